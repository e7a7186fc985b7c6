"""``python -m engramdb``: the command line."""

from .cli import main

main()
