"""The sampler: nucleus sampling with a lean decode loop on common random numbers."""
