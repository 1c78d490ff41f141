"""The ``reach data`` command line: ``render``, ``rectify`` and ``check`` (and, through
:mod:`reach_core.format_cli`, the format converters)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..kinematics import JOINT_DESIGNS
from .common import DatasetError
from .load import load_dataset
from .write import (rectify_dataset, render_hifi_dataset, render_proxy_dataset, render_sim_dataset,
                    render_sim_net_images, save_net_dataset)


def _cmd_render(args) -> int:
    import time

    t0 = time.perf_counter()
    try:
        if args.n < 1:
            raise DatasetError(f"--n must be at least 1, got {args.n}")
        if args.source != "proxy" and (args.marker or args.target != "painted"):
            raise DatasetError("--target and --marker are for --source proxy")
        if args.net:
            if args.source != "sim":
                raise DatasetError("--net (network images) is for the simple simulator only")
            if args.design != "uniform":
                raise DatasetError("--net images are uniform scenes (no --design)")
            images, target, q = render_sim_net_images(args.n, args.seed, args.supersample,
                                                      workers=args.workers, tool=args.tool)
            out = save_net_dataset(args.out, images, target, q, tool=args.tool,
                                   meta={"source": "sim", "seed": args.seed,
                                         "supersample": args.supersample})
        elif args.source == "sim":
            out = render_sim_dataset(args.out, args.n, args.seed, design=args.design,
                                     image_format=args.format or "png", tool=args.tool)
        elif args.source == "proxy":
            from ..proxy_renderer import ProxyRenderError
            try:
                out = render_proxy_dataset(args.out, args.n, args.seed, target=args.target,
                                           marker=args.marker, design=args.design, tool=args.tool,
                                           image_format=args.format or "jpg")
            except ProxyRenderError as err:
                raise DatasetError(str(err)) from None
        else:
            from ..hifi_renderer import HifiRenderError
            try:
                out = render_hifi_dataset(args.out, args.n, args.seed, virtual=not args.target_in_image,
                                          design=args.design, image_format=args.format or "jpg",
                                          tool=args.tool)
            except HifiRenderError as err:
                raise DatasetError(str(err)) from None
    except (DatasetError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n = json.loads((Path(out) / "dataset.json").read_text())["n"]   # a grid may hold fewer
    print(f"wrote {n} labelled {args.source} images to {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_rectify(args) -> int:
    from ..camera_model import CameraFileError, CameraModel
    try:
        out = rectify_dataset(args.dir, CameraModel.load(args.camera), args.out,
                              crop=not args.full_frame, first=args.first)
    except (DatasetError, CameraFileError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.dir} as the virtual camera sees it to {out}")
    return 0


def _cmd_check(args) -> int:
    try:
        ds = load_dataset(args.dir, max_bad_fraction=args.max_bad_fraction, strict=args.strict,
                          verbose=False, tool=None)   # any tool: the dataset's own
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(ds.summary())
    return 0


def add_cli(sub) -> None:
    """``reach data render``, ``reach data check``, and the format converters of
    :mod:`reach_core.format_cli` (``from-bag``, ``export-lerobot``, ``import-lerobot``)."""
    from ..format_cli import add_format_cli

    p = sub.add_parser(
        "render", help="render a labelled dataset (simple simulator or higher-fidelity MuJoCo)",
        description="Render N labelled images, scenes uniform as in Algorithm 1, to a dataset "
                    "folder (images/ + labels.csv + dataset.json; format in README.md).  "
                    "--source hifi frames hold no target: it is painted at load time (virtual "
                    "target), as for real webcam frames.")
    p.add_argument("--source", choices=("sim", "hifi", "proxy"), default="sim",
                   help="sim, hifi (MuJoCo, the tuning domain) or proxy (the held-out realistic "
                        "domain: test it, never train or tune on its test seeds)")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="scene (and look) seed (default 0)")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--format", choices=("png", "jpg"), default=None,
                   help="image files (default: png for sim, jpg for hifi and proxy)")
    p.add_argument("--design", choices=JOINT_DESIGNS, default="uniform",
                   help="joint configurations: uniform draws (default, Algorithm 1), a shifted "
                        "Halton sequence, or a grid of at most N points (fills the joint box "
                        "evenly, for few labelled frames)")
    p.add_argument("--target-in-image", action="store_true",
                   help="hifi: draw the target into the frames instead of marking it virtual")
    p.add_argument("--target", choices=("painted", "physical"), default="painted",
                   help="proxy: painted (no disc in the frames, the virtual target is painted at "
                        "load time) or physical (a blue disc on a stand in the frames)")
    p.add_argument("--marker", action="store_true",
                   help="proxy: the calibration marker on the hand (calibration frames)")
    p.add_argument("--net", action="store_true",
                   help="sim: store 84x84 network images (net_images.npy) instead of camera frames")
    p.add_argument("--supersample", type=int, default=5, help="--net: renderer supersampling (5)")
    p.add_argument("--workers", type=int, default=1, help="--net: rendering processes (default 1)")
    p.add_argument("--tool", default="paper", help="tool point of the targets (and of the drawn gripper): "
                   "paper, electric_gripper_fingertips or metres from w1; recorded in dataset.json "
                   "(default: paper)")
    p.set_defaults(func=_cmd_render)

    r = sub.add_parser("rectify", help="a dataset's frames as the virtual camera sees them",
                       description="Resample a dataset's frames through the camera file of the "
                                   "camera that took them (reach calibrate) into the virtual "
                                   "camera the networks see, and write them as a new dataset "
                                   "(the networks' crop only, unless --full-frame).")
    r.add_argument("dir")
    r.add_argument("--camera", required=True, help="camera file (reach calibrate)")
    r.add_argument("--out", required=True, help="dataset folder to write")
    r.add_argument("--full-frame", action="store_true", help="keep the whole virtual frame")
    r.add_argument("--first", type=int, default=None, metavar="N",
                   help="only the first N frames (e.g. 50 of 200, for a frame-count curve)")
    r.set_defaults(func=_cmd_rectify)

    c = sub.add_parser("check", help="load a dataset and report its bad rows",
                       description="Load a dataset folder through the camera pipeline and list "
                                   "rows that would be skipped (file, row, reason).")
    c.add_argument("dir")
    c.add_argument("--strict", action="store_true", help="fail at the first bad row")
    c.add_argument("--max-bad-fraction", type=float, default=0.1)
    c.set_defaults(func=_cmd_check)
    add_format_cli(sub)
