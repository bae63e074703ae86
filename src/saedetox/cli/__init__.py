"""The command line (``saedetox``): one module per command; :mod:`saedetox.cli.app` is the entry point."""
