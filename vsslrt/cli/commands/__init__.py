"""One module per command. Each defines `register(app)`; the app discovers them.

Command modules must stay light at import time: heavy imports go inside the
command function, so `vsslrt --help` imports no backend.
"""
