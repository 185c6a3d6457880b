"""Tuning studies side by side: budget spent, best-validation trial and its test figure, one line per study.

    python scripts/compare_studies.py \
        journal:docs/results/tuning_converged_frappe/DeRes/study.journal \
        journal:docs/results/tuning_converged_frappe/OneTrans/study.journal

Each argument is a storage as ``tune --storage`` takes it (``journal:PATH`` or a SQLAlchemy URL), optionally
followed by ``#STUDY`` when the storage holds several studies. ``--first N`` cuts every study to its first N
trials (equal trials for studies of different lengths). The last column is the epochs each study had spent when it
first reached the best validation value of the first study listed. Prints a markdown table.
"""

import argparse
from typing import List

import optuna

from fuxictr_deres.tuning.compare import best_trial_row, format_study_rows, study_summary
from fuxictr_deres.tuning.storage import open_storage


def load(spec: str) -> optuna.Study:
    storage_spec, _, name = spec.partition("#")
    storage = open_storage(storage_spec)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if not name:
        if len(names) != 1:
            raise SystemExit(f"{storage_spec}: holds studies {names}; name one as {storage_spec}#STUDY")
        name = names[0]
    if name not in names:
        raise SystemExit(f"{storage_spec}: no study {name!r} (it holds {names})")
    return optuna.load_study(study_name=name, storage=storage)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("storages", nargs="+", help="journal:PATH or a SQLAlchemy URL, optionally #STUDY")
    parser.add_argument("--metric", default="AUC")
    parser.add_argument("--first", type=int, default=None, help="only the first N trials of each study")
    args = parser.parse_args(argv)
    if args.first is not None and args.first < 1:
        raise SystemExit(f"--first: expected a positive number of trials, got {args.first}")
    studies = [load(spec) for spec in args.storages]
    target = study_summary(studies[0], first=args.first)["best"]
    rows = [best_trial_row(s, args.metric, args.first, target=target) for s in studies]
    print("\n".join(format_study_rows(rows, args.metric)))


if __name__ == "__main__":
    main()
