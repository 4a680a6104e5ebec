"""``python -m reportscore.cli``: the same as the ``reportscore`` command."""

from reportscore.cli import main

main()
