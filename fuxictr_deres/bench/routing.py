"""Backfill of the routing-removal figure for a store's runs recorded before runs carried it.

Each run since ``runner.routing_removal_on_test`` records ``routing_removal_test``: test AUC / logloss as trained
and with the residual rule's routing removed (d_AUC > 0: the routing helps). For an older record whose checkpoint is
still on disk (checkpoints are never committed), ``add_routing_removal`` rebuilds the model from the record's
config, loads the checkpoint, checks that it reproduces the recorded test AUC, measures the figure and appends the
record again with it: the store stays append-only, and the summary reads the last record of each run.
"""

import os
import shlex
import sys
from typing import List, Optional

from ..results import write_result
from .store import DataRoots, absolute_record, data_params
from .summary import bench_records

RECORDED_AUC_TOLERANCE = 1e-6


def add_routing_removal(out_dir: str, roots: Optional[DataRoots] = None) -> List[str]:
    """Append ``routing_removal_test`` to every run of ``out_dir`` that has a routing rule, lacks the figure and
    still has its checkpoint; return one line per run saying what was done."""
    from ..runner import build_model, load_data, routing_removal_on_test
    command = " ".join(shlex.quote(a) for a in sys.argv)
    done, data, data_key = [], None, None
    for record in bench_records(out_dir):
        name = f"{record['expid']} seed {record['seed']}"
        if "routing_removal_test" in record:
            continue
        checkpoint = absolute_record(record, out_dir).get("checkpoint")
        if not checkpoint or not os.path.isfile(checkpoint):
            done.append(f"{name}: skipped, checkpoint {checkpoint} not on this machine")
            continue
        params = dict(data_params(record, roots or DataRoots()), model_root=os.path.dirname(checkpoint),
                      verbose=0, gpu=-1)
        key = (params["dataset_id"], params.get("data_root"), params.get("prepared_root"))
        if key != data_key:
            data, data_key = load_data(params), key
        model = build_model(params, data.feature_map)
        if getattr(getattr(model, "rule", None), "routing_removal", None) is None:
            continue                                                 # no routing to remove: nothing to add
        model.load_weights(checkpoint)
        routing = routing_removal_on_test(model, data.loaders(params, "test"))
        recorded = float(record["test"]["AUC"])
        if abs(routing["AUC"] - recorded) > RECORDED_AUC_TOLERANCE:
            raise ValueError(f"{out_dir}: {name}: checkpoint {checkpoint} gives test AUC {routing['AUC']:.6f}, the "
                             f"record says {recorded:.6f}: it is not the checkpoint of this run")
        write_result(out_dir, dict(record, routing_removal_test=routing), command)
        done.append(f"{name}: routing d_AUC {routing['d_AUC']:+.5f} (test)")
    return done
