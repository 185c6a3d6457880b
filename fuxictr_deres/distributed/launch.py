"""Running one function on N fresh processes with torchrun's own launcher (``elastic_launch``), for ``bench`` and
``tune`` runs: a standalone rendezvous per call (as ``torchrun --standalone``: a c10d store on a free local port),
no restarts, and a failing rank tears the whole group down; its error comes back as ``RankFailedError``."""

import uuid
from typing import Any, Callable

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch


class RankFailedError(RuntimeError):
    """A rank of a launched run raised; the message is that rank's error."""


def run_on_processes(nproc: int, entrypoint: Callable[..., Any], *args: Any) -> Any:
    """``entrypoint(*args)`` on ``nproc`` spawned processes (each calls ``distributed.init``); rank 0's return
    value. ``entrypoint`` must be a module-level function and ``args`` picklable."""
    if nproc < 1:
        raise ValueError(f"--nproc {nproc}: expected a positive number of processes")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=int(nproc), run_id=f"fuxictr-deres-{uuid.uuid4()}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn")
    try:
        results = elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        message = failure.message            # the error file's {"message": "Type: text", "extraInfo": {...}}
        if isinstance(message, dict):
            message = message.get("message", message)
        raise RankFailedError(f"rank {rank} of {nproc} failed (exit code {failure.exitcode}): {message}") from None
    return results[0]
