"""Data: readers for the formats users bring, where the datasets live, and the reference world's splits."""
