"""fuxictr-deres: DeRes (arXiv 2606.07980) and Transformer-style CTR baselines as FuxiCTR models."""

__version__ = "0.1.0"
