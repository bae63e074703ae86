"""The model: loading any HF causal LM, its architecture, hook points, tokens and activation capture."""
