"""FuxiCTR zoo contributions: ``model_zoo/<Model>/`` folders and BARS result folders, generated from this package."""
