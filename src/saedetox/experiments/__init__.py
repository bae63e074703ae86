"""Experiments: sweeps of many runs from one YAML, the feature-splitting study, and the demo."""
