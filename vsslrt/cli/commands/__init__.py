"""One module per command; the app (`vsslrt.cli.app`) discovers every module without a leading underscore.

A command module holds its command as a module-level function (options typed with the aliases of
`vsslrt.cli._options`), its examples, and `register(app)`, which adds that function to the app
(`app.command(NAME, epilog=...)(function)`, or `app.add_typer` for a group such as `data`). Modules
with a leading underscore are helpers of the commands (`_demo`: the built-in benchmark of `bench`).

Command modules must stay light at import time: the pipeline and the optional backends are imported
inside the command function (each group with a `# lazy:` reason), so `vsslrt --help` imports no backend.
"""
