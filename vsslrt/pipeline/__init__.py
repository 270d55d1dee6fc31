"""The pipeline: the stages joined into runs (bench, build, calibrate, localize, distributed, plots, run store).

It may import everything below it (the ground at `vsslrt`'s root, `vsslrt.data`, `vsslrt.engine`,
`vsslrt.eval`, `vsslrt.export`); nothing below imports it, and it never prints: the CLI does.
"""
