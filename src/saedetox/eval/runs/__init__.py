"""A run's bookkeeping: its folder, generation log, fingerprint, content identities and push calibration."""
