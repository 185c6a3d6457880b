"""Observing FuxiCTR's training loop: a NaN guard, per-evaluation history, step timing and an eval callback.

FuxiCTR's ``BaseModel.fit`` has no callback hook, so the monitor wraps two of the model's own methods on the
instance (``train_step`` and ``checkpoint_and_earlystop``); FuxiCTR's early-stopping and learning-rate decay run
unchanged inside them. Works for any FuxiCTR model, including the installed DCNv2 and FinalMLP.
"""

import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from .errors import NonFiniteLossError

EvalCallback = Callable[[int, Dict[str, float], "torch.nn.Module"], None]


class TrainingMonitor:
    """Attach to a model before ``fit``; read ``history``, ``best_round``, ``train_seconds`` after it."""

    def __init__(self, model, on_eval: Optional[EvalCallback] = None, context: str = ""):
        self.model, self.on_eval, self.context = model, on_eval, context
        self.history: List[Dict[str, float]] = []
        self.train_seconds, self.train_samples = 0.0, 0
        self._train_step = model.train_step
        self._checkpoint = model.checkpoint_and_earlystop
        self._compute_loss = model.compute_loss
        self._evaluate_metrics = model.evaluate_metrics
        model.train_step = self.train_step
        model.checkpoint_and_earlystop = self.checkpoint_and_earlystop
        model.compute_loss = self.compute_loss
        model.evaluate_metrics = self.evaluate_metrics

    def _where(self) -> str:
        m = self.model
        return f"epoch {m._epoch_index + 1}, batch {m._batch_index + 1}"

    def _stop(self, what: str) -> None:
        raise NonFiniteLossError(
            f"{self.context}: {what}; no result was written (the best checkpoint so far stays at "
            f"{self.model.checkpoint}). Lower learning_rate or check the data.")

    def compute_loss(self, return_dict, y_true):
        # predictions go NaN before the loss does, and the BCE loss then fails with "all elements of input should
        # be between 0 and 1": check them first
        y_pred = return_dict["y_pred"].detach()
        if not bool(torch.isfinite(y_pred).all()):
            bad = int((~torch.isfinite(y_pred)).sum())
            self._stop(f"{bad} of {y_pred.numel()} training predictions became non-finite (NaN/inf) at "
                       f"{self._where()}")
        return self._compute_loss(return_dict, y_true)

    def evaluate_metrics(self, y_true, y_pred, metrics, group_id=None):
        if not np.isfinite(y_pred).all():
            self._stop(f"{int((~np.isfinite(y_pred)).sum())} of {len(y_pred)} evaluation predictions are "
                       f"non-finite (NaN/inf) after training epoch {self.model._epoch_index + 1}")
        return self._evaluate_metrics(y_true, y_pred, metrics, group_id)

    def train_step(self, batch_data):
        start = time.perf_counter()
        loss = self._train_step(batch_data)
        self.train_seconds += time.perf_counter() - start
        self.train_samples += len(next(iter(batch_data.values())))
        if not torch.isfinite(loss.detach()):
            self._stop(f"training loss became {loss.item()} at {self._where()}")
        return loss

    def checkpoint_and_earlystop(self, logs, min_delta=1e-6):
        self._checkpoint(logs, min_delta)
        m = self.model
        entry = dict(logs)
        entry.update(epoch=m._epoch_index + 1, step=m._total_steps, lr=m.optimizer.param_groups[0]["lr"])
        self.history.append(entry)
        if self.on_eval is not None:
            self.on_eval(len(self.history) - 1, dict(logs), m)

    @property
    def best_round(self) -> Optional[Dict[str, float]]:
        """The evaluation round whose monitored value was the best (the checkpoint fit reloads)."""
        if not self.history:
            return None
        m = self.model
        values = [m._monitor.get_value(h) for h in self.history]
        pick = max if m._monitor_mode == "max" else min
        return self.history[values.index(pick(values))]
