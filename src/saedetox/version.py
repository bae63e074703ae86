"""The package version (one place; ``saedetox.__version__`` and exported checkpoints read it)."""

__version__ = "0.1.0"
