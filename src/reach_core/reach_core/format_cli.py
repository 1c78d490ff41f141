"""``reach data from-bag``, ``reach data export-lerobot``, ``reach data import-lerobot``: datasets
from and to the formats users have (rosbag2/MCAP bags: :mod:`reach_core.bags`; LeRobotDataset
folders: :mod:`reach_core.lerobot_format`).  Formats and options: docs/data_formats.md."""
from __future__ import annotations

import sys

from .datasets import DatasetError


def _floats(text: str, n: int, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise DatasetError(f"{what} must be {n} comma-separated numbers, got {text!r}")
    return values


def _run(fn, done: str) -> int:
    try:
        out = fn()
    except (DatasetError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(done.format(out=out))
    return 0


def _cmd_from_bag(args) -> int:
    from .bags import dataset_from_bag

    def go():
        out = dataset_from_bag(
            args.bag, args.out, image_topic=args.image_topic, joint_topic=args.joint_topic,
            target_topic=args.target_topic, tolerance_s=args.tolerance,
            joint_names=tuple(args.joints.split(",")), target_mode=args.target_mode,
            placeholder_target=_floats(args.placeholder_target, 2, "--placeholder-target"),
            bag_time=args.bag_time, max_unpaired_fraction=args.max_unpaired_fraction,
            image_format=args.format, tool=args.tool)
        return _count(out)
    return _run(go, "wrote {out} labelled frames from " + str(args.bag) + " to " + str(args.out))


def _count(out) -> str:
    import json
    from pathlib import Path
    return str(json.loads((Path(out) / "dataset.json").read_text())["n"])


def _cmd_export(args) -> int:
    from .lerobot_format import export_lerobot
    return _run(lambda: export_lerobot(args.dataset, args.out, fps=args.fps, task=args.task,
                                       robot_type=args.robot_type),
                "wrote LeRobotDataset v3.0 folder {out}")


def _cmd_import(args) -> int:
    from .lerobot_format import import_lerobot

    def go():
        joints = args.joints.split(",") if args.joints else None
        out = import_lerobot(args.dir, args.out, image_key=args.image_key,
                             state_key=args.state_key, joints=joints, target_key=args.target_key,
                             target_mode=args.target_mode,
                             placeholder_target=_floats(args.placeholder_target, 2,
                                                        "--placeholder-target"),
                             image_format=args.format)
        return _count(out)
    return _run(go, "wrote {out} labelled frames from " + str(args.dir) + " to " + str(args.out))


def add_format_cli(sub) -> None:
    """The three subcommands, added to ``reach data``."""
    b = sub.add_parser(
        "from-bag", help="build a dataset from a rosbag2 bag (MCAP or sqlite3)",
        description="Label each camera frame of a bag with the joint state nearest to it by "
                    "header stamp (within --tolerance) and write a dataset folder.")
    b.add_argument("bag", help="rosbag2 folder (or .mcap file)")
    b.add_argument("--out", required=True, help="dataset folder to write")
    b.add_argument("--image-topic", default="/camera/image_raw",
                   help="sensor_msgs/Image (rgb8, bgr8) or CompressedImage topic")
    b.add_argument("--joint-topic", default="/robot/joint_states", help="sensor_msgs/JointState")
    b.add_argument("--target-topic", default=None,
                   help="geometry_msgs/PointStamped of the target (x, y m); none: virtual targets")
    b.add_argument("--joints", default="left_s1,left_e1,left_w1",
                   help="the joint-state names of the three plane joints (shoulder, elbow, wrist)")
    b.add_argument("--tolerance", type=float, default=0.02, help="largest stamp gap (s)")
    b.add_argument("--bag-time", action="store_true",
                   help="pair by recording time instead of header stamps")
    b.add_argument("--target-mode", choices=("in_image", "virtual"), default=None)
    b.add_argument("--placeholder-target", default="0.5,0.2", help="x,y (m) without a target topic")
    b.add_argument("--max-unpaired-fraction", type=float, default=0.5)
    b.add_argument("--format", choices=("png", "jpg"), default="png")
    b.add_argument("--tool", default="paper", help="tool point of the recorded robot (paper, "
                   "electric_gripper_fingertips or metres), recorded in dataset.json (default: paper)")
    b.set_defaults(func=_cmd_from_bag)

    e = sub.add_parser("export-lerobot", help="write a dataset as a LeRobotDataset (v3.0) folder")
    e.add_argument("dataset")
    e.add_argument("--out", required=True)
    e.add_argument("--fps", type=float, default=10.0, help="frame rate written to info.json")
    e.add_argument("--task", default="reach the target with the hand")
    e.add_argument("--robot-type", default="baxter_left_arm_plane")
    e.set_defaults(func=_cmd_export)

    i = sub.add_parser("import-lerobot", help="write a LeRobotDataset (v2/v3) folder as a dataset")
    i.add_argument("dir")
    i.add_argument("--out", required=True)
    i.add_argument("--image-key", default=None, help="camera feature (default: the only one)")
    i.add_argument("--state-key", default=None, help="joint-state feature (observation.state)")
    i.add_argument("--joints", default=None,
                   help="names or indices of s1,e1,w1 in it (default left_s1,left_e1,left_w1)")
    i.add_argument("--target-key", default=None, help="target feature (x, y m); none: virtual")
    i.add_argument("--target-mode", choices=("in_image", "virtual"), default=None)
    i.add_argument("--placeholder-target", default="0.5,0.2")
    i.add_argument("--format", choices=("png", "jpg"), default="png")
    i.set_defaults(func=_cmd_import)
