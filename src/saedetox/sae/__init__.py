"""SAEs: loading (registry, local folders, the reference world) with their conventions, and the preflight."""
