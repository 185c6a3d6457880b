"""Optuna tuning per model and dataset: search spaces in yaml, persisted and resumable studies, pruning from the
per-epoch validation metric, the best trial exported as an expid, and a grid-versus-Optuna comparison."""

from .space import SearchSpace, load_space
from .study import StudyOptions, run_study

__all__ = ["SearchSpace", "load_space", "StudyOptions", "run_study"]
