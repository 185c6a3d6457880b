"""Streaming, validated reading of raw delimited text (Criteo ``train.txt``, Avazu ``train.csv``, BARS csv).

polars parses each block of lines (multi-threaded); the checks that polars cannot make with a line number (field
count, labels, integer counts) are vectorised here so a malformed row is reported as ``file, line N: ...``.
Written by hand because polars' own errors name neither the line nor the expectation, and its batched reader
cannot skip and count bad rows.

Blocks of ``block_bytes`` are cut at line ends, so memory stays at one block whatever the file size. Empty lines
are ignored. Fields are never quoted in these formats (the separator never occurs inside a value).
"""
import gzip
import io
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import polars as pl

DEFAULT_BLOCK_BYTES = 64 << 20
LABEL_PATTERN = r"^[01](\.0*)?$"
INTEGER_PATTERN = r"^-?[0-9]+$"


class BadInputError(ValueError):
    """A malformed row of a raw file; the message names the file, the line and what was expected."""


#: what gzip raises on a cut-off or damaged stream (EOFError: "Compressed file ended before the end-of-stream")
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _damaged_gzip(path: str, line: int, err: Exception) -> BadInputError:
    return BadInputError(f"{path}: the gzip file is truncated or damaged (after line {line - 1}: {err}); "
                         f"copy or compress it again")


@dataclass
class RawLayout:
    """How to read and check one raw file.

    Attributes:
        path: the file (plain or gzip, detected by its magic bytes).
        separator: one-character field separator.
        columns: field names in file order; with ``has_header`` the header must equal them (None: take the header).
        has_header: the first line names the fields.
        label: the label column, which must be 0 or 1.
        integer_cols: columns that must be an integer or empty (Criteo's counts).
        numeric_cols: columns that must be a number or empty (config dtype float/int).
        patterns: ``{column: (regex, what is expected)}`` extra checks on non-empty values.
        dtypes: ``{column: polars dtype}`` casts after the checks; other columns stay String.
        description: the expected fields, for error messages.
    """

    path: str
    separator: str
    columns: Optional[List[str]]
    has_header: bool
    label: str
    integer_cols: Sequence[str] = ()
    numeric_cols: Sequence[str] = ()
    patterns: Dict[str, tuple] = field(default_factory=dict)
    dtypes: Dict[str, object] = field(default_factory=dict)
    description: str = ""


@dataclass
class ReadStats:
    """What a read saw: rows kept and rows skipped (with the first few skipped line numbers)."""

    rows: int = 0
    skipped: int = 0
    skipped_lines: List[int] = field(default_factory=list)

    def skip(self, line_numbers: np.ndarray) -> None:
        self.skipped += int(len(line_numbers))
        room = 10 - len(self.skipped_lines)
        if room > 0:
            self.skipped_lines.extend(int(x) for x in line_numbers[:room])


def open_raw(path: str):
    """A binary file object over ``path``, decompressing gzip; returns ``(reader, raw file)``."""
    raw = open(path, "rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    raw.seek(0)
    return raw, raw


def _line_blocks(reader, block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines (each ends with a newline)."""
    rest = b""
    while True:
        data = reader.read(block_bytes)
        if not data:
            break
        data = rest + data if rest else data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1:]
        yield data[:cut + 1]
    if rest:
        yield rest + b"\n"


def read_header(path: str, separator: str) -> List[str]:
    """The field names on the first line of ``path``."""
    reader, raw = open_raw(path)
    try:
        line = reader.readline().decode("utf-8").rstrip("\r\n")
    except GZIP_ERRORS as err:
        raise _damaged_gzip(path, 1, err) from err
    finally:
        raw.close()
    if not line:
        raise BadInputError(f"{path}, line 1: expected a header line, found an empty line")
    return line.split(separator)


def _sep_name(sep: str) -> str:
    return {"\t": "TAB", ",": "comma"}.get(sep, repr(sep))


def _check_fields(layout: RawLayout, block: bytes, first_line: int, skip: bool, stats: ReadStats):
    """Drop empty lines and (when skipping) lines with the wrong field count; return (bytes, line numbers)."""
    a = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(a == 10)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    seps = np.flatnonzero(a == ord(layout.separator))
    nfields = np.bincount(np.searchsorted(ends, seps), minlength=len(ends)) + 1
    empty = lengths == 0
    expected = len(layout.columns)
    bad = (nfields != expected) & ~empty
    lines = first_line + np.arange(len(ends))
    if bad.any():
        if not skip:
            i = int(np.flatnonzero(bad)[0])
            raise BadInputError(
                f"{layout.path}, line {lines[i]}: expected {expected} {_sep_name(layout.separator)}-separated "
                f"fields ({layout.description or ', '.join(layout.columns)}), found {nfields[i]}")
        stats.skip(lines[bad])
    keep = ~(empty | bad)
    if keep.all():
        return block, lines
    mask = np.repeat(keep, lengths + 1)
    return a[mask].tobytes(), lines[keep]


def _value_checks(layout: RawLayout):
    """``[(column, bad-value expression, what is expected)]`` for the layout's columns."""
    checks = [(layout.label, ~pl.col(layout.label).fill_null("").str.contains(LABEL_PATTERN), "a label 0 or 1")]
    for name in layout.integer_cols:
        checks.append((name, pl.col(name).is_not_null() & ~pl.col(name).str.contains(INTEGER_PATTERN),
                       "an integer count or an empty field"))
    for name in layout.numeric_cols:
        if name not in layout.integer_cols:
            checks.append((name, pl.col(name).is_not_null() & pl.col(name).cast(pl.Float64, strict=False).is_null(),
                           "a number or an empty field"))
    for name, (regex, what) in layout.patterns.items():
        checks.append((name, pl.col(name).is_not_null() & ~pl.col(name).str.contains(regex), what))
    return checks


def iter_raw_frames(layout: RawLayout, skip_bad_rows: bool = False, stats: Optional[ReadStats] = None,
                    block_bytes: int = DEFAULT_BLOCK_BYTES,
                    on_progress: Optional[Callable[[int], None]] = None) -> Iterator[pl.DataFrame]:
    """Yield typed DataFrames of consecutive rows of ``layout.path``, checked row by row.

    Raises ``BadInputError`` (file, line, expectation) on the first malformed row unless ``skip_bad_rows``, in
    which case bad rows are dropped and counted in ``stats``. ``on_progress(n)`` gets the compressed bytes read.
    """
    stats = stats if stats is not None else ReadStats()
    reader, raw = open_raw(layout.path)
    line_no = 1
    try:
        if layout.has_header:
            header = reader.readline().decode("utf-8").rstrip("\r\n").split(layout.separator)
            if layout.columns is None:
                layout.columns = header
            elif header != list(layout.columns):
                raise BadInputError(f"{layout.path}, line 1: expected the header {layout.separator.join(layout.columns)}"
                                    f", found {layout.separator.join(header)}")
            line_no = 2
        checks = _value_checks(layout)
        schema = {name: pl.String for name in layout.columns}
        casts = [pl.col(n).cast(layout.dtypes[n]) for n in layout.columns if n in layout.dtypes]
        position = raw.tell()
        for block in _line_blocks(reader, block_bytes):
            count = block.count(b"\n")
            data, lines = _check_fields(layout, block, line_no, skip_bad_rows, stats)
            line_no += count
            if on_progress is not None:
                now = raw.tell()
                on_progress(now - position)
                position = now
            if not len(lines):
                continue
            df = pl.read_csv(io.BytesIO(data), has_header=False, separator=layout.separator, schema=schema,
                             quote_char=None)
            if df.height != len(lines):  # e.g. a stray carriage return; should not happen
                raise BadInputError(f"{layout.path}, lines {lines[0]}-{lines[-1]}: parsed {df.height} rows from "
                                    f"{len(lines)} lines")
            bad = df.select([expr.alias(f"__bad{k}") for k, (_, expr, _) in enumerate(checks)])
            row_bad = bad.select(pl.any_horizontal(pl.all())).to_series()
            if row_bad.any():
                if not skip_bad_rows:
                    i = int(row_bad.arg_true()[0])
                    k = next(k for k in range(len(checks)) if bad[i, k])
                    name, _, what = checks[k]
                    raise BadInputError(f"{layout.path}, line {lines[i]}: field {name} is {df[i, name]!r}, "
                                        f"expected {what}")
                mask = row_bad.to_numpy()
                stats.skip(lines[mask])
                df = df.filter(~row_bad)
            stats.rows += df.height
            yield df.with_columns(casts) if casts else df
    except GZIP_ERRORS as err:
        raise _damaged_gzip(layout.path, line_no, err) from err
    finally:
        raw.close()

