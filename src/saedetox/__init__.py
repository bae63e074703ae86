"""saedetox: detoxify language models by steering sparse-autoencoder features, and measure the cost."""

__version__ = "0.1.0"
