"""Discovery: rank SAE latents by how toxicity-specific they are, select some, and write features.json."""
