"""Where a study lives: a SQLite file by default, any SQLAlchemy URL, or an Optuna journal file.

Every process opens the storage from the same text (``--storage``), so worker processes and other machines share
one study. RDB storages get Optuna's heartbeat, so a trial whose worker died on another machine is failed after
the grace period and retried (``recovery.retry_callback``); the journal has no heartbeat in Optuna 5, and relies
on the same-host check in ``recovery``.
"""

import os
import warnings
from typing import Optional

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from ..errors import ConfigError

JOURNAL_PREFIX = "journal:"
HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 240


def default_storage(out_dir: str) -> str:
    """``sqlite:///<out>/study.db`` (absolute)."""
    return "sqlite:///" + os.path.join(os.path.abspath(out_dir), "study.db")


def normalize_storage(spec: Optional[str], out_dir: str) -> str:
    """The storage text every process opens: relative journal/SQLite paths made absolute."""
    if not spec:
        return default_storage(out_dir)
    if spec.startswith(JOURNAL_PREFIX):
        path = spec[len(JOURNAL_PREFIX):]
        if not path:
            raise ConfigError("--storage journal:PATH needs a file path")
        return JOURNAL_PREFIX + os.path.abspath(os.path.expanduser(path))
    if "://" not in spec:
        raise ConfigError(f"--storage {spec!r}: expected a SQLAlchemy URL (sqlite:///study.db, "
                          f"postgresql://user@host/db, ...) or journal:PATH")
    if spec.startswith("sqlite:///") and not spec.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(spec[len("sqlite:///"):])
    return spec


def open_storage(spec: str, stale_trial_callback=None) -> optuna.storages.BaseStorage:
    """Open a normalized storage text (see ``normalize_storage``)."""
    if spec.startswith(JOURNAL_PREFIX):
        path = spec[len(JOURNAL_PREFIX):]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    engine_kwargs = {}
    if spec.startswith("sqlite:"):
        db = spec[len("sqlite:///"):]
        if db and db != ":memory:":
            os.makedirs(os.path.dirname(db) or ".", exist_ok=True)
        # several worker processes write to one file: wait for the lock instead of failing at once
        engine_kwargs["connect_args"] = {"timeout": 120}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)   # heartbeat_interval
        return RDBStorage(spec, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                          grace_period=GRACE_PERIOD_S, heartbeat_stale_trial_callback=stale_trial_callback)
