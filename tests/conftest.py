"""Shared fixtures: a small in-memory FuxiCTR FeatureMap and batches for model-level tests."""

import os

import pytest
import torch
from fuxictr.features import FeatureMap

NUM_CAT, NUM_NUMERIC, VOCAB = 6, 2, 50

# Tiny test models: one thread avoids the thread-sync overhead that dominates small ops on a 2-core machine.
torch.set_num_threads(1)


def toy_feature_map(tmp_dir: str) -> FeatureMap:
    fm = FeatureMap("toy", tmp_dir)
    for i in range(NUM_NUMERIC):
        fm.features[f"I{i}"] = {"source": "", "type": "numeric"}
    for i in range(NUM_CAT):
        fm.features[f"C{i}"] = {"source": "", "type": "categorical", "padding_idx": 0, "vocab_size": VOCAB}
    fm.labels = ["label"]
    fm.num_fields = fm.get_num_fields()
    fm.set_column_index()
    return fm


def toy_batch(batch_size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = {f"I{i}": torch.rand(batch_size, generator=g) * 5 for i in range(NUM_NUMERIC)}
    batch.update({f"C{i}": torch.randint(1, VOCAB, (batch_size,), generator=g) for i in range(NUM_CAT)})
    batch["label"] = torch.randint(0, 2, (batch_size,), generator=g).float()
    return batch


def build_model(model_class, feature_map, seed: int = 7, **overrides):
    params = dict(model_id="test", gpu=-1, optimizer="adam", loss="binary_crossentropy", metrics=["AUC"],
                  verbose=0, model_root=feature_map.data_dir, num_tokens=4, d_model=16, num_layers=2,
                  num_heads=2, ffn_ratio=2, embedding_dim=8, head_hidden_units=[16],
                  # a visible embedding scale, so RMSNorm's eps does not dominate the toy inputs at init
                  embedding_initializer="partial(nn.init.normal_, std=0.1)")
    params.update(overrides)
    torch.manual_seed(seed)
    return model_class(feature_map, **params)


@pytest.fixture
def feature_map(tmp_path):
    return toy_feature_map(str(tmp_path))


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "benchmark_configs")
# small enough for 2 CPU cores; the demo signal is still learnt well above AUC 0.5
TINY = {"num_tokens": 4, "d_model": 16, "num_layers": 2, "num_heads": 2, "ffn_ratio": 2,
        "head_hidden_units": [16], "epochs": 2, "batch_size": 512, "verbose": 0}


@pytest.fixture(scope="session")
def demo_data_root(tmp_path_factory):
    """The demo dataset, generated and prepared once per session through the normal preparation path."""
    from fuxictr_deres.config import load_expid
    from fuxictr_deres.data import ensure_dataset
    root = str(tmp_path_factory.mktemp("data"))
    ensure_dataset(load_expid(CONFIG, "DeRes_demo", data_root=root))
    return root


def expid_model(expid: str, overrides: dict = None, seed: int = 0):
    """The model of a real expid (benchmark_configs, through the config loader and the runner's builder) on a
    synthetic FeatureMap of its dataset: the shipped init, FuxiCTR's std-1e-4 embeddings included."""
    from fuxictr_deres.bench.synthetic import build_for_measurement, expid_params, synthetic_feature_map
    params = expid_params(CONFIG, expid, overrides)
    return build_for_measurement(params, synthetic_feature_map(params), seed=seed).eval()


def expid_twin(expid: str, reference: str, overrides: dict = None, rule_overrides: dict = None):
    """``expid``'s model carrying every backbone weight of ``reference``'s model (same dataset, same overrides;
    ``rule_overrides`` go to ``expid`` only); only the residual rule's parameters differ."""
    ref = expid_model(reference, overrides)
    model = expid_model(expid, {**(overrides or {}), **(rule_overrides or {})})
    missing, unexpected = model.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("rule.") for k in missing), (missing, unexpected)
    return model, ref
