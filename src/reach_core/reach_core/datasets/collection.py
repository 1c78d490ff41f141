"""The collection store: a ``reach.dataset/1`` folder written frame by frame, resumable.

What ``collect_images`` (:mod:`reach_ros.collect_images`) records, without ROS: the joint grid it
drives the arm through (:func:`joint_grid`, serpentine), the joint-limits check of a grid point
(:func:`out_of_limits`), and :class:`CollectionStore`, which writes the dataset folder
(``labels.csv``, ``images/NNNNN.png``, ``dataset.json`` with ``"target": "virtual"`` and the
collection's grid and skipped points) one frame at a time:

* every frame is written to a temporary file, fsynced and renamed, and labels.csv and dataset.json
  are rewritten the same way after each frame, so a crash, Ctrl-C or a full disk never leaves a
  half-written file behind;
* opening an existing folder resumes it: the grid points already in labels.csv (with their image
  file) are done; a folder of another grid, another tool or not written by the collector is
  refused (:class:`CollectError`);
* less than ``min_free_mb`` free before a frame, or ENOSPC / EDQUOT while writing, is a
  :class:`DiskFullError`; what was recorded before stays loadable.
"""
from __future__ import annotations

import csv
import errno
import json
import os
import shutil

import numpy as np

from ..kinematics import JOINT_LIMITS, JOINT_NAMES, parse_tool
from .common import DATASET_FORMAT, LABEL_COLUMNS
from .write import _label_row


# ------------------------------------------------------------------------------ the grid
def joint_grid(lo, hi, counts) -> np.ndarray:
    """Grid points (M, 3) of s1, e1, w1, in serpentine order (neighbours differ in one joint)."""
    axes = [np.linspace(a, b, int(n)) if int(n) > 1 else np.array([float(a)])
            for a, b, n in zip(lo, hi, counts)]
    points = []
    for i, s1 in enumerate(axes[0]):
        e1s = axes[1] if i % 2 == 0 else axes[1][::-1]
        for j, e1 in enumerate(e1s):
            k = i * len(axes[1]) + j
            w1s = axes[2] if k % 2 == 0 else axes[2][::-1]
            points.extend([s1, e1, w1] for w1 in w1s)
    return np.array(points, dtype=np.float64).reshape(-1, 3)


def out_of_limits(q, margin: float) -> str | None:
    for name, v, (lo, hi) in zip(JOINT_NAMES, q, JOINT_LIMITS):
        if not lo + margin <= v <= hi - margin:
            return (f'{name} = {v:.3f} rad is outside its joint limits [{lo:.3f}, {hi:.3f}]'
                    + (f' less the margin {margin:g}' if margin else ''))
    return None


# ------------------------------------------------------------------------------ the dataset
class CollectError(RuntimeError):
    """The collection cannot go on (the message says why and what to do)."""


class DiskFullError(CollectError):
    pass


class CollectionStore:
    """A dataset folder written one frame at a time, atomically, resumable (ROS-free)."""

    def __init__(self, out_dir: str, grid: np.ndarray, camera: dict, target, image_format='png',
                 min_free_mb: float = 0.0, tool='paper'):
        self.tool = parse_tool(tool)
        self.format, self.columns = DATASET_FORMAT, LABEL_COLUMNS
        self.root = os.path.abspath(out_dir)
        self.grid = np.asarray(grid, dtype=np.float64)
        self.camera = camera
        self.target = [float(target[0]), float(target[1])]
        self.ext = '.jpg' if image_format == 'jpg' else '.png'
        self.min_free_mb = min_free_mb
        self.rows: dict[int, list[str]] = {}      # grid index -> labels.csv row
        self.skipped: dict[int, str] = {}         # grid index -> reason (this or earlier runs)
        self.resumed = 0

    # -- opening and resuming
    def open(self) -> 'CollectionStore':
        try:
            os.makedirs(os.path.join(self.root, 'images'), exist_ok=True)
        except OSError as err:
            raise CollectError(f'cannot create the dataset folder {self.root}: {err}') from None
        meta_path = os.path.join(self.root, 'dataset.json')
        if os.path.exists(meta_path):
            try:
                with open(meta_path, encoding='utf-8') as f:
                    meta = json.load(f)
            except (OSError, ValueError) as err:
                raise CollectError(f'{meta_path} is unreadable ({err}): use another out_dir') \
                    from None
            old = meta.get('collection', {}).get('grid')
            if meta.get('format') != self.format or old is None:
                raise CollectError(f'{self.root} holds a dataset not written by collect_images: '
                                   f'use another out_dir')
            if np.shape(old) != self.grid.shape or not np.allclose(old, self.grid, atol=1e-9):
                raise CollectError(f'{self.root} holds a collection with another joint grid '
                                   f'({len(old)} points, this run: {len(self.grid)}): use '
                                   f'another out_dir, or the grid parameters of that run')
            if not self.tool.same(meta.get('tool')):
                raise CollectError(f'{self.root} holds a collection for the tool '
                                   f'{meta.get("tool", {}).get("name", "paper")}, this run is for '
                                   f'{self.tool.describe()}: use another out_dir')
            self.skipped = {int(k): v for k, v in meta.get('collection', {}).get(
                'skipped', {}).items()}
        labels = os.path.join(self.root, 'labels.csv')
        if os.path.exists(labels):
            with open(labels, newline='', encoding='utf-8') as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header is not None and list(header) != list(self.columns):
                    raise CollectError(f'{labels}: unexpected header {header}: use another '
                                       f'out_dir')
                for row in reader:
                    if len(row) != len(self.columns):
                        continue
                    name = row[0]
                    try:
                        index = int(os.path.splitext(os.path.basename(name))[0])
                    except ValueError:
                        continue
                    if 0 <= index < len(self.grid) and \
                            os.path.isfile(os.path.join(self.root, name)):
                        self.rows[index] = row
        self.resumed = len(self.rows)
        for index in self.rows:
            self.skipped.pop(index, None)
        for d in (self.root, os.path.join(self.root, 'images')):   # leftovers of a crash
            for name in os.listdir(d):
                if name.endswith('.tmp'):
                    try:
                        os.remove(os.path.join(d, name))
                    except OSError:
                        pass
        self._write_meta()
        return self

    def done(self, index: int) -> bool:
        return index in self.rows

    # -- writing
    def _free_mb(self) -> float:
        return shutil.disk_usage(self.root).free / 1e6

    def check_space(self) -> None:
        free = self._free_mb()
        if free < self.min_free_mb:
            raise DiskFullError(
                f'disk full: {free:.0f} MB free on the disk of {self.root}, less than '
                f'min_free_mb = {self.min_free_mb:g}; the {len(self.rows)} frames recorded so far '
                f'are kept: free some space and run the same command again to resume')

    def _atomic(self, path: str, write) -> None:
        """write(file object) into path.tmp, fsync, rename over path; a failure leaves path as it
        was and no .tmp behind; ENOSPC becomes DiskFullError."""
        tmp = path + '.tmp'
        try:
            with open(tmp, 'wb') as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            try:
                os.remove(tmp)
            except OSError:
                pass
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(
                    f'disk full while writing {path} ({err.strerror}); the {len(self.rows)} '
                    f'frames recorded before are kept: free some space and run the same command '
                    f'again to resume') from None
            raise CollectError(f'cannot write {path}: {err}') from None

    def _write_labels(self, rows: dict[int, list[str]]) -> None:
        def write(f):
            import io
            text = io.StringIO()
            w = csv.writer(text, lineterminator='\n')
            w.writerow(self.columns)
            w.writerows(rows[i] for i in sorted(rows))
            f.write(text.getvalue().encode('utf-8'))
        self._atomic(os.path.join(self.root, 'labels.csv'), write)

    def _write_meta(self) -> None:
        meta = {'format': self.format, 'target': 'virtual', 'n': len(self.rows),
                'source': 'collect_images', 'camera': self.camera, 'tool': self.tool.as_dict(),
                'collection': {'joints': list(JOINT_NAMES), 'grid': self.grid.tolist(),
                               'placeholder_target': self.target,
                               'skipped': {str(k): v for k, v in sorted(self.skipped.items())}}}
        data = (json.dumps(meta, indent=2) + '\n').encode('utf-8')
        self._atomic(os.path.join(self.root, 'dataset.json'), lambda f: f.write(data))

    def record(self, index: int, frame: np.ndarray, q: np.ndarray) -> str:
        """Save grid point ``index``'s frame (uint8 RGB) labelled with joint angles ``q`` (3)."""
        from PIL import Image as PILImage
        self.check_space()
        name = f'images/{index:05d}{self.ext}'
        lo, hi = JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1]
        q = np.clip(np.asarray(q, dtype=np.float64), lo, hi)   # a sensor reading a hair outside
        img = PILImage.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
        fmt = 'JPEG' if self.ext == '.jpg' else 'PNG'
        self._atomic(os.path.join(self.root, name),
                     lambda f: img.save(f, format=fmt, **({'quality': 92} if fmt == 'JPEG' else
                                                          {'compress_level': 6})))
        row = _label_row(name, self.target, q)
        rows = dict(self.rows)
        rows[index] = row
        self._write_labels(rows)           # the row counts only once labels.csv has it
        self.rows = rows
        self.skipped.pop(index, None)
        self._write_meta()
        return name

    def skip(self, index: int, reason: str) -> None:
        self.skipped[index] = reason
        self._write_meta()
