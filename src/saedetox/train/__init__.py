"""Training: the reference LM, its SAEs and the probe judge, and the reference world's card."""
