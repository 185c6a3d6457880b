"""Append-only ``.npy`` column files: one per feature and label of a split, written chunk by chunk.

The row count of each split is known before encoding, so the header is written first and the chunks appended
with plain writes: no array is held whole and no memory map inflates the writer's resident memory.
"""
import hashlib
import os
from typing import Dict

import numpy as np


class ColumnFiles(object):
    """``<folder>/<column>.npy`` for each column of ``dtypes``, each of ``rows`` rows, with a running checksum."""

    def __init__(self, folder: str, dtypes: Dict[str, np.dtype], rows: int):
        os.makedirs(folder, exist_ok=True)
        self.folder, self.rows = folder, int(rows)
        self.dtypes = {name: np.dtype(dt) for name, dt in dtypes.items()}
        self.written = {name: 0 for name in dtypes}
        self.hashes = {name: hashlib.sha256() for name in dtypes}
        self.files = {}
        for name, dtype in self.dtypes.items():
            fd = open(os.path.join(folder, f"{name}.npy"), "wb")
            np.lib.format.write_array_header_1_0(fd, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                      "fortran_order": False, "shape": (self.rows,)})
            self.files[name] = fd
            self.hashes[name].update(f"{name}/{dtype.str}/{self.rows}".encode())

    def append(self, name: str, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, dtype=self.dtypes[name])
        if self.written[name] + len(data) > self.rows:
            raise ValueError(f"{self.folder}/{name}.npy: more rows than the {self.rows} expected")
        buf = data.data.cast("B") if len(data) else b""
        self.files[name].write(buf)
        self.hashes[name].update(buf)
        self.written[name] += len(data)

    def close(self) -> Dict[str, str]:
        """Close every file, check the row counts, return ``{column: sha256 hex}``."""
        for fd in self.files.values():
            fd.close()
        short = {n: w for n, w in self.written.items() if w != self.rows}
        if short:
            raise ValueError(f"{self.folder}: columns written with {short} rows, expected {self.rows}")
        return {name: h.hexdigest() for name, h in self.hashes.items()}
