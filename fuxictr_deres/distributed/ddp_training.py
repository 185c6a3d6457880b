"""FuxiCTR's own training loop (``BaseModel.fit``) run data-parallel with torch's DistributedDataParallel.

``BaseModel.train_step`` calls ``self.forward``; ``DistributedTraining`` attaches to a built model (like
``TrainingMonitor``, by wrapping methods on the instance, so FuxiCTR's loop, early stopping and lr decay run
unchanged) and routes that one call through the DDP wrapper, whose backward all-reduces (averages) the gradients:

- ``train_step``: FuxiCTR's step with ``forward`` going through ``DDP(model)``; the wrapper calls the model again and
  then reaches its own ``forward`` (no recursion). The returned loss is the mean over ranks (the global batch's
  loss, so the NaN guard and the logged loss agree on every rank).
- ``evaluate``: each rank predicts its strided shard of the split; the (label, prediction[, group]) arrays are
  gathered on rank 0, put back in file order, the metrics computed there over the whole split and broadcast.
- ``checkpoint_and_earlystop``: FuxiCTR's decision runs on rank 0 only (which also writes the checkpoint); the
  stop flag, patience count, best value and learning rates are broadcast and set on the other ranks.
- ``load_weights`` (end of ``fit``): rank 0 reads the best checkpoint and broadcasts every parameter and buffer,
  so no other rank reads files. Before that it checks the ranks' parameters are bitwise identical.

The DDP wrapper is kept here, never as a submodule of the model, so ``model.state_dict()`` (what FuxiCTR saves) has
no ``module.`` prefix and a checkpoint loads in one process.
"""

import hashlib
import logging
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .process_group import DistContext, broadcast_object, gather_arrays


class DistributedTraining:
    """Attach to a built FuxiCTR model before ``fit`` (and before ``TrainingMonitor``, so its timing includes
    communication). ``static_graph`` (default True) lets DDP find parameters a model never uses once, instead of
    failing on them; set ``ddp_static_graph: false`` in an expid whose graph changes between steps."""

    def __init__(self, model: torch.nn.Module, ctx: DistContext, static_graph: bool = True):
        self.model, self.ctx = model, ctx
        self._forward, self._train_step = model.forward, model.train_step
        self._evaluate, self._checkpoint, self._load = (model.evaluate, model.checkpoint_and_earlystop,
                                                        model.load_weights)
        self._through_ddp = False
        model.forward = self.forward
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        # DDP broadcasts rank 0's parameters and buffers here: every rank starts from the same model
        self.ddp = DistributedDataParallel(model, device_ids=device_ids, static_graph=bool(static_graph))
        model.train_step = self.train_step
        model.evaluate = self.evaluate
        model.checkpoint_and_earlystop = self.checkpoint_and_earlystop
        model.load_weights = self.load_weights
        if ctx.rank:
            # dropout etc. draw different masks on each rank's half of the global batch (rank 0 keeps the stream
            # of a one-process run)
            torch.manual_seed(torch.initial_seed() + 7919 * ctx.rank)

    def forward(self, *args, **kwargs):
        if self._through_ddp:
            self._through_ddp = False          # DDP calls the model back: this time run the model's own forward
            try:
                return self.ddp(*args, **kwargs)
            finally:
                self._through_ddp = True
        return self._forward(*args, **kwargs)

    def train_step(self, batch_data):
        self._through_ddp = True
        try:
            loss = self._train_step(batch_data)
        finally:
            self._through_ddp = False
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        return mean / self.ctx.world_size

    def evaluate(self, data_generator, metrics=None):
        model = self.model
        hooked = model.__dict__.get("evaluate_metrics")   # an instance hook, e.g. the bench's prediction catcher
        compute = model.evaluate_metrics
        sharded = bool(getattr(data_generator, "sharded", False))

        def whole_split_metrics(y_true, y_pred, metrics, group_id=None):
            arrays = [y_true, y_pred] + ([] if group_id is None else [group_id])
            if sharded:
                parts = [gather_arrays(np.asarray(a), self.ctx) for a in arrays]
                arrays = [interleave(p) for p in parts] if self.ctx.is_main else None
            logs = compute(*arrays[:2], metrics, arrays[2] if len(arrays) > 2 else None) if self.ctx.is_main \
                else None
            return broadcast_object(logs, self.ctx)

        model.evaluate_metrics = whole_split_metrics
        try:
            return self._evaluate(data_generator, metrics)
        finally:
            if hooked is None:
                del model.evaluate_metrics
            else:
                model.evaluate_metrics = hooked

    def checkpoint_and_earlystop(self, logs, min_delta=1e-6):
        model = self.model
        state = None
        if self.ctx.is_main:
            self._checkpoint(logs, min_delta)
            state = dict(stop=model._stop_training, stopping_steps=model._stopping_steps,
                         best=model._best_metric, lrs=[g["lr"] for g in model.optimizer.param_groups])
        state = broadcast_object(state, self.ctx)
        model._stop_training, model._stopping_steps, model._best_metric = (state["stop"], state["stopping_steps"],
                                                                           state["best"])
        for group, lr in zip(model.optimizer.param_groups, state["lrs"]):
            group["lr"] = lr

    def load_weights(self, checkpoint):
        self.check_in_sync()
        if self.ctx.is_main:
            self._load(checkpoint)
        self.broadcast_state()

    def broadcast_state(self) -> None:
        """Rank 0's parameters and buffers on every rank."""
        with torch.no_grad():
            for tensor in list(self.model.parameters()) + list(self.model.buffers()):
                dist.broadcast(tensor.data, src=0)

    def parameter_digest(self) -> str:
        """sha256 of every parameter's bytes, in ``named_parameters`` order."""
        digest = hashlib.sha256()
        for name, param in self.model.named_parameters():
            digest.update(name.encode())
            digest.update(param.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def check_in_sync(self) -> None:
        """Raise unless every rank holds bitwise the same parameters (DDP's invariant after each step)."""
        digests = [None] * self.ctx.world_size
        dist.all_gather_object(digests, self.parameter_digest())
        if len(set(digests)) != 1:
            raise RuntimeError(f"parameters differ across ranks after training: digests {digests}")
        logging.info("Parameters bitwise identical on %d ranks (sha256 %s)", self.ctx.world_size, digests[0][:12])


def interleave(parts: Optional[list]) -> np.ndarray:
    """Undo the strided sharding of an evaluation split: rank r held rows r, r + W, r + 2W, ..."""
    world = len(parts)
    out = np.empty(sum(len(p) for p in parts), dtype=parts[0].dtype)
    for rank, part in enumerate(parts):
        out[rank::world] = part
    return out
