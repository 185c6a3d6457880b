"""``fuxictr-deres prepare``: raw Criteo/Avazu/csv files -> a FuxiCTR dataset folder with BARS settings."""

import argparse
import logging
import os
from typing import Optional

HELP = "prepare one dataset of a config (raw files -> BARS splits -> FuxiCTR feature map and id columns)"
EXAMPLE = "fuxictr-deres prepare --config benchmark_configs --dataset demo"


def dataset_params(config_dir: str, dataset_id: str, data_root: Optional[str] = None,
                   prepared_root: Optional[str] = None) -> dict:
    """The ``dataset_config.yaml`` entry of ``dataset_id`` with absolute ``data_root`` and ``prepared_root`` (as
    ``run`` resolves them)."""
    from ..config import _read_yaml, _unknown, _yaml_files, resolve_data_roots
    from ..errors import ConfigError
    config_dir = os.path.abspath(os.path.expanduser(config_dir))
    files = _yaml_files(config_dir, "dataset_config")
    if not files:
        raise ConfigError(f"{config_dir}: expected dataset_config.yaml or dataset_config/*.yaml")
    datasets = {}
    for path in files:
        datasets.update(_read_yaml(path))
    if dataset_id not in datasets:
        raise _unknown("dataset_id", dataset_id, datasets, os.path.join(config_dir, "dataset_config.yaml"))
    params = dict(datasets[dataset_id] or {}, dataset_id=dataset_id, config_dir=config_dir)
    return resolve_data_roots(params, config_dir, data_root, prepared_root)


def summary(info: dict, folder: str) -> str:
    """What a prepared folder holds: rows and click rate per split, vocabulary size per field, checksum."""
    lines = [f"dataset {info['dataset_id']}: {folder}"]
    for split in ("train", "valid", "test"):
        rows = info["rows"][split]
        rate = info["click_rate"][split]
        lines.append(f"  {split:5s} {rows:>12,d} rows  click rate {rate:.4f}" if rate is not None
                     else f"  {split:5s} {rows:>12,d} rows")
    if info.get("skipped_rows"):
        lines.append(f"  skipped {info['skipped_rows']:,d} bad rows (first lines: {info['skipped_lines_first']})")
    vocab = "  ".join(f"{k}={info['vocab_size'][k]:,d}" for k in info["columns"] if k in info["vocab_size"])
    lines.append(f"  vocabulary size per field: {vocab}")
    lines.append(f"  checksum (sha256 of the id arrays): {info['arrays_sha256']}")
    return "\n".join(lines)


def execute(args: argparse.Namespace) -> int:
    from ..data.prepare import PREPARED_FILE, ensure_dataset, read_prepared
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    params = dataset_params(args.config, args.dataset, args.data_root, args.prepared_root)
    if args.source:
        source = dict(params.get("source") or {})
        if source.get("format") not in ("criteo_tsv", "avazu_csv"):
            raise ValueError(f"--source names one raw file; dataset {args.dataset!r} has source format "
                             f"{source.get('format')!r} (criteo_tsv or avazu_csv take one file)")
        source["path"] = os.path.abspath(os.path.expanduser(args.source))
        source.pop("generate", None)
        params["source"] = source
    marker = os.path.join(params["prepared_root"], args.dataset, PREPARED_FILE)
    before = os.path.getmtime(marker) if os.path.exists(marker) else None
    folder = ensure_dataset(params, force=args.force, skip_bad_rows=args.skip_bad_rows, progress=True)
    if before is not None and os.path.getmtime(marker) == before:
        print(f"up to date (same inputs and settings): {folder}")
    print(summary(read_prepared(folder), folder))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("prepare", help=HELP, description=HELP)
    parser.add_argument("--config", required=True, help="config directory holding dataset_config.yaml")
    parser.add_argument("--dataset", required=True, help="dataset id, e.g. criteo, criteo_x4, avazu")
    parser.add_argument("--data_root", default=None,
                        help="where the source files are read (default: the config's data_root or "
                             "$FUXICTR_DERES_DATA_ROOT)")
    parser.add_argument("--prepared_root", default=None,
                        help="where the prepared dataset is written (default: data_root; the config's prepared_root "
                             "or $FUXICTR_DERES_PREPARED_ROOT): the inputs can then sit in a read-only folder")
    parser.add_argument("--source", default=None,
                        help="the raw file to read instead of the configured path (plain or .gz)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the fingerprint matches")
    parser.add_argument("--skip-bad-rows", dest="skip_bad_rows", action="store_true",
                        help="drop malformed rows and report how many (default: stop at the first)")
    parser.add_argument("--verbose", action="store_true", help="log each step")
    parser.set_defaults(func=execute)
