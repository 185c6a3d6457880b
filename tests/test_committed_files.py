"""What the repository ships names no machine's paths: users have neither this machine's folders nor the shared
data folder beside the checkout."""

import os
import re
import subprocess

from conftest import REPO

MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/tmp/|/root/|/home/)|\.\./shared\b")
SHIPPED = ("docs/", "model_zoo/", "benchmark_configs/", "tuning/", "scripts/", "fuxictr_deres/", "README.md")


def test_shipped_files_name_no_machine_paths():
    tracked = subprocess.run(["git", "ls-files", *SHIPPED], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    offenders = []
    for path in tracked:
        try:
            with open(os.path.join(REPO, path), encoding="utf-8") as fd:
                for number, line in enumerate(fd, 1):
                    if MACHINE_PATH.search(line):
                        offenders.append(f"{path}:{number}: {line.strip()[:120]}")
        except UnicodeDecodeError:                                    # binary (npz): no text paths in it
            continue
    assert not offenders, "machine paths in shipped files (take paths as arguments):\n" + "\n".join(offenders)
