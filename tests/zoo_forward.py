"""Forward one test batch of each zoo folder through a model loaded from that folder's trained checkpoint.

Run by tests/test_zoo.py twice: in the clean virtual environment with the folder's own ``src`` (``zoo``) and in the
development one with this package's class of the same name (``package``); the outputs must be identical.

    python zoo_forward.py zoo|package OUT_DIR FOLDER [FOLDER ...]

Imports only fuxictr, torch, numpy and the standard library (plus fuxictr_deres for ``package``).
"""

import importlib
import os
import sys

import numpy as np
import torch


def forward(folder: str, flavour: str) -> np.ndarray:
    from fuxictr.features import FeatureMap
    from fuxictr.utils import load_config
    os.chdir(folder)
    name = os.path.basename(os.path.normpath(folder))
    params = load_config("./config/", f"{name}_test")
    params["gpu"] = -1
    data_dir = os.path.join(params["data_root"], params["dataset_id"])
    feature_map = FeatureMap(params["dataset_id"], data_dir)
    feature_map.load(os.path.join(data_dir, "feature_map.json"), params)
    if flavour == "zoo":
        sys.path.insert(0, os.getcwd())
        for cached in [m for m in sys.modules if m == "src" or m.startswith("src.")]:
            del sys.modules[cached]
        model_class = getattr(importlib.import_module("src"), params["model"])
        sys.path.pop(0)
    else:
        from fuxictr_deres.models import get_model_class
        model_class = get_model_class(params["model"])
    torch.manual_seed(0)
    model = model_class(feature_map, **params)
    model.load_weights(os.path.join(params["model_root"], params["dataset_id"], f"{params['model_id']}.model"))
    model.eval()
    arrays = np.load(params["test_data"])
    columns = list(feature_map.features) + list(feature_map.labels)
    stacked = torch.from_numpy(np.column_stack([arrays[c] for c in columns]))   # as FuxiCTR's npz collator
    batch = {c: stacked[:, i] for i, c in enumerate(columns)}
    with torch.no_grad():
        return model(batch)["y_pred"].numpy()


def main(argv):
    flavour, out_dir, folders = argv[0], argv[1], argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    here = os.getcwd()
    for folder in folders:
        y = forward(os.path.abspath(folder), flavour)
        os.chdir(here)
        np.save(os.path.join(out_dir, os.path.basename(os.path.normpath(folder)) + ".npy"), y)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
