"""Evaluation: the RealToxicityPrompts protocol (sampling, judges, toxicity, fluency, diversity, capability)."""
