"""Discovery: rank SAE latents by how toxicity-specific they are, select some, and write features.json."""

DEFAULT_K = 20  # latents selected; the reference demo found k = 20 better than 10 (test-split set AUROC)
DEFAULT_MIN_AUROC = 0.6  # per latent, on the select split
