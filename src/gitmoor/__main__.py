"""``python -m gitmoor``: the `gitmoor` command, as the console script runs it."""

from gitmoor.cli.main import main

main()
