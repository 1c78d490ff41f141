"""A dataset folder's labels.csv: reading it, parsing its rows, and checking each row's labels
(finite, in range, agreeing with their normalised columns), the bad rows with their reasons."""
from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np

from ..scene import OMEGA_HIGH, OMEGA_LOW
from .common import LABEL_COLUMNS, OMEGA_COLUMNS, PHYS_COLUMNS, DatasetError


def _read_labels(root: Path, limit: int | None = None
                 ) -> tuple[list[int], list[str], np.ndarray, list[tuple[int, str, str]]]:
    """Rows of labels.csv: (row numbers, image names, physical labels (N, 5), bad rows)."""
    path, header, body = _read_csv(root, limit)
    header, col, cols, has_omega = _label_columns(path, header)
    rows, names, values, bad = _parse_rows(body, header, col["image"], cols)
    return _check_labels(rows, names, values, has_omega, bad)


def _read_csv(root: Path, limit: int | None) -> tuple[Path, list[str], list[tuple[int, list[str]]]]:
    """labels.csv's path, header and first ``limit`` rows (with their line numbers, from 2)."""
    path = root / "labels.csv"
    if not path.is_file():
        raise DatasetError(f"{root}: no labels.csv (see the dataset format in README.md)")
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            body = list(itertools.islice(enumerate(reader, start=2), limit))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: cannot read ({err})") from None
    if not header:
        raise DatasetError(f"{path}: empty file, expected a header {','.join(LABEL_COLUMNS)}")
    return path, header, body


def _label_columns(path: Path, header: list[str]) -> tuple[list[str], dict, list[int], bool]:
    """(stripped header, column index by name, indices of the physical then, if all present, the
    normalised label columns, whether they are); a header without the required columns is refused."""
    header = [h.strip() for h in header]
    missing = [c for c in ("image",) + PHYS_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{path}: header lacks column(s) {', '.join(missing)} "
                           f"(has {', '.join(header)})")
    col = {c: header.index(c) for c in header}
    has_omega = all(c in col for c in OMEGA_COLUMNS)
    cols = [col[c] for c in PHYS_COLUMNS] + ([col[c] for c in OMEGA_COLUMNS] if has_omega else [])
    return header, col, cols, has_omega


def _parse_rows(body, header: list[str], image_col: int, cols: list[int]
                ) -> tuple[list[int], list[str], np.ndarray, list[tuple[int, str, str]]]:
    """The rows' numbers, image names and label values (N, len(cols)); blank rows are left out,
    rows of the wrong length or with a label that is not a number are bad."""
    rows, names, values_ok, bad = [], [], [], []
    for line, values in body:
        if not values or all(not v.strip() for v in values):
            continue
        name = values[image_col].strip() if len(values) > image_col else ""
        if len(values) != len(header):
            bad.append((line, name, f"{len(values)} fields, the header has {len(header)}"))
            continue
        try:
            values_ok.append([float(values[c]) for c in cols])
        except ValueError as err:
            bad.append((line, name, f"label is not a number ({err})"))
            continue
        rows.append(line)
        names.append(name)
    return rows, names, np.array(values_ok, dtype=np.float64).reshape(len(rows), len(cols)), bad


def _check_labels(rows: list[int], names: list[str], arr: np.ndarray, has_omega: bool,
                  bad: list[tuple[int, str, str]]
                  ) -> tuple[list[int], list[str], np.ndarray, list[tuple[int, str, str]]]:
    """Keep the rows whose labels are finite, in range and agree with their normalised columns
    (if given); the others join ``bad`` with the reason, and ``bad`` is sorted."""
    phys = arr[:, :5]
    with np.errstate(invalid="ignore"):
        omega = (phys - OMEGA_LOW) / (OMEGA_HIGH - OMEGA_LOW)
    finite = np.all(np.isfinite(phys), axis=1)
    in_range = np.all((omega >= -1e-3) & (omega <= 1 + 1e-3), axis=1)
    agree = np.all(np.abs(arr[:, 5:] - omega) <= 1e-4, axis=1) if has_omega else \
        np.ones(len(rows), bool)
    good = finite & in_range & agree
    for k in np.flatnonzero(~good):
        bad.append((rows[k], names[k], _label_problem(phys[k], omega[k], finite[k], in_range[k])))
    rows = [r for r, g in zip(rows, good) if g]
    names = [n for n, g in zip(names, good) if g]
    labels = phys[good]
    bad.sort()
    return rows, names, labels, bad


def _label_problem(phys: np.ndarray, omega: np.ndarray, finite: bool, in_range: bool) -> str:
    """Why one row's labels (physical, normalised) are bad."""
    if not finite:
        which = [c for c, v in zip(PHYS_COLUMNS, phys) if not math.isfinite(v)]
        return f"label {', '.join(which)} is NaN or infinite"
    if not in_range:
        j = int(np.flatnonzero((omega < -1e-3) | (omega > 1 + 1e-3))[0])
        return (f"label out of range: {PHYS_COLUMNS[j]} = {phys[j]:.4f} is outside "
                f"[{OMEGA_LOW[j]:.4f}, {OMEGA_HIGH[j]:.4f}]")
    return "normalised columns disagree with the physical ones"
