"""Steering: the spec, its resolution against a model, the modes' arithmetic, hooks, and export."""
