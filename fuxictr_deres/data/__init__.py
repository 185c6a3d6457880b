"""Data path: raw Criteo/CSV -> FuxiCTR prepared datasets, a seeded loader, and a synthetic Criteo-schema demo."""
from .demo import write_criteo_demo
from .prepare import DatasetNotFoundError, ensure_dataset, read_prepared
from .loader import SeededDataLoader

__all__ = ["DatasetNotFoundError", "ensure_dataset", "read_prepared", "SeededDataLoader", "write_criteo_demo"]
