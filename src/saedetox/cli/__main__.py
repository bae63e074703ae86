"""``python -m saedetox.cli``: the same as the ``saedetox`` command."""

from saedetox.cli.app import main

main()
