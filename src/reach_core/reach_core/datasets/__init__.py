"""Labelled image datasets for the perception module: writing, loading, checking.

A dataset is a folder::

    DIR/
      labels.csv      one row per image (header required), see LABEL_COLUMNS
      images/         camera frames: PNG or JPEG, 8-bit RGB, the camera's width x height
      dataset.json    optional: {"target": "in_image" | "virtual", "camera": {...}, "tool": {...}, ...}

``labels.csv`` columns: ``image`` (path relative to DIR), the scene configuration in physical
units -- ``target_x``, ``target_y`` (metres, the arm's plane frame of
:mod:`reach_core.kinematics`), ``left_s1``, ``left_e1``, ``left_w1`` (radians) -- and the same
normalised to [0, 1] (``omega_target_x`` ... ``omega_left_w1``, :func:`reach_core.scene.normalise`).
The physical columns are the truth; the normalised ones are optional on input and, if present,
must agree with them (to 1e-4).

``dataset.json`` ``"target"`` says whether the target disc is already in the frames
(``"in_image"``, the default, as written for simulator datasets) or must be painted into them as
the paper's *virtual target* (``"virtual"``: frames of the robot without a target, e.g. from a real
webcam, with :func:`reach_core.renderer.add_target` applied at load time).  ``"camera"`` overrides
fields of :data:`reach_core.scene.DEFAULT_CAMERA` (width, height, px_per_m, origin_px, roi) for
frames of another size or camera placement; every frame must have that width x height.
``"tool"`` (``{"name", "length"}``, :mod:`reach_core.kinematics`; absent: the paper's) is the tool
point the labels' targets were drawn for and the arm was drawn to: a run with another tool refuses
the dataset (:func:`check_dataset_tool`).

Loading goes through the same pipeline as live frames (:func:`reach_core.renderer.preprocess`).
A row whose file is missing, empty, unreadable, not 8-bit RGB, of the wrong size, or whose labels
are NaN or out of range is skipped; each skip is recorded with its row number, file and reason, and
:func:`load_dataset` fails (:class:`DatasetError`) when more than ``max_bad_fraction`` of the rows
are bad, or with ``strict=True`` at the first bad row.

The package, by role:

============= ================================================================================
common.py     the format's columns, Dataset, DatasetError, dataset.json (camera, tool)
labels.py     labels.csv: reading, parsing and checking the rows
load.py       load_dataset, load_unlabelled, read_frame, read_raw_frames, sim_test_set
write.py      write_dataset, render_*_dataset, save_net_dataset, render_sim_net_images,
              rectify_dataset
collection.py CollectionStore, the folder ``collect_images`` writes frame by frame (atomic
              writes, resume, disk-space checks); joint_grid, out_of_limits, CollectError,
              DiskFullError
cli.py        ``reach data render``, ``reach data rectify``, ``reach data check`` (add_cli)
============= ================================================================================

Everything public is importable from ``reach_core.datasets`` itself (and ``_camera_from``,
``_read_labels`` and ``_read_meta``, which :mod:`reach_core.bags` and
:mod:`reach_core.lerobot_format` use).
"""
from .cli import add_cli
from .collection import CollectError, CollectionStore, DiskFullError, joint_grid, out_of_limits
from .common import (DATASET_FORMAT, IMAGE_EXTENSIONS, LABEL_COLUMNS, OMEGA_COLUMNS, PHYS_COLUMNS, Dataset,
                     DatasetError, check_dataset_tool)
from .common import _camera_from as _camera_from, _read_meta as _read_meta    # (bags, lerobot_format)
from .labels import _read_labels as _read_labels                               # (bags, lerobot_format)
from .load import load_dataset, load_unlabelled, raw_camera, read_frame, read_raw_frames, sim_test_set
from .write import (rectify_dataset, render_hifi_dataset, render_proxy_dataset, render_sim_dataset,
                    render_sim_net_images, save_net_dataset, write_dataset)

__all__ = [
    # common
    "DATASET_FORMAT", "IMAGE_EXTENSIONS", "LABEL_COLUMNS", "OMEGA_COLUMNS", "PHYS_COLUMNS", "Dataset",
    "DatasetError", "check_dataset_tool",
    # loading
    "load_dataset", "load_unlabelled", "raw_camera", "read_frame", "read_raw_frames", "sim_test_set",
    # writing
    "rectify_dataset", "render_hifi_dataset", "render_proxy_dataset", "render_sim_dataset",
    "render_sim_net_images", "save_net_dataset", "write_dataset",
    # collecting frame by frame (collect_images)
    "CollectError", "CollectionStore", "DiskFullError", "joint_grid", "out_of_limits",
    # command line
    "add_cli",
]
