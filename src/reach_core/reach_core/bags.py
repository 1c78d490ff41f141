"""rosbag2 (MCAP) recordings <-> reach datasets, without ROS: the ``rosbags`` library reads and
writes the bags (pure Python, no rclpy), with its built-in ROS 2 Jazzy message types.

Writing (:class:`BagWriter`): a rosbag2 folder with one MCAP file, as ``ros2 bag record -s mcap``
writes it; messages are given as CDR bytes (an rclpy node passes
``rclpy.serialization.serialize_message(msg)``, see ``collect_images``' ``bag_path``) or built here
from arrays (images, joint states, target points: what the tests and tools need).

Reading (:func:`dataset_from_bag`): the camera frames on an image topic (``sensor_msgs/Image``
rgb8/bgr8, or ``sensor_msgs/CompressedImage`` jpeg/png) become the images of a
``reach.dataset/1`` folder (:mod:`reach_core.datasets`), each labelled with the joint state
(``sensor_msgs/JointState`` with ``left_s1``, ``left_e1``, ``left_w1``) whose header stamp is
nearest to the frame's, if it is within ``tolerance_s``.  An optional target topic
(``geometry_msgs/PointStamped``, x and y in metres in the arm's plane frame) labels each frame with
the latest target not after it; without one the frames carry a placeholder target and the dataset
says ``"target": "virtual"`` (as a ``collect_images`` run writes it).

Bad input raises :class:`BagError` naming the bag, the topic and what is wrong: a bag that is not
one, a missing topic (the topics the bag has are listed), a topic of another message type, joint
states without the three joints, frames of an encoding that is not colour, and stamps that do not
pair (no joint state within the tolerance for too many frames: clocks not synchronised).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .datasets import DATASET_FORMAT, DatasetError, write_dataset
from .kinematics import JOINT_NAMES
from .scene import DEFAULT_CAMERA, OMEGA_HIGH, OMEGA_LOW

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
JOINT_TYPE = "sensor_msgs/msg/JointState"
TARGET_TYPE = "geometry_msgs/msg/PointStamped"
PLACEHOLDER_TARGET = (0.5, 0.2)   # as collect_images' target_x/target_y defaults


class BagError(DatasetError):
    """A bag cannot be turned into a dataset; the message names the bag, topic and the problem."""


def _typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_JAZZY)


def _stamp(ns: int):
    return int(ns) // 1_000_000_000, int(ns) % 1_000_000_000


# ----------------------------------------------------------------------------- writing
class BagWriter:
    """A rosbag2 folder (MCAP storage by default) written message by message; a context manager.

    ``write_raw(topic, msgtype, cdr, t_ns)`` stores serialised messages (e.g. from rclpy), the
    other ``write_*`` build the message from plain values.  The folder must not exist yet.
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap"):
        from rosbags.rosbag2 import StoragePlugin, Writer
        plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
        if plugin is None:
            raise ValueError(f"storage must be mcap or sqlite3, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists: a bag is written to a new folder")
        self.store = _typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._conns: dict[str, object] = {}
        self.count = 0

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_raw(self, topic: str, msgtype: str, data: bytes, t_ns: int) -> None:
        """One CDR-serialised message of type ``msgtype`` (e.g. sensor_msgs/msg/Image) at t_ns."""
        conn = self._conns.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.store)
            self._conns[topic] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"topic {topic} already holds {conn.msgtype}, not {msgtype}")
        self._writer.write(conn, int(t_ns), bytes(data))
        self.count += 1

    def _header(self, stamp_ns: int, frame_id: str):
        t = self.store.types
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](*_stamp(stamp_ns)),
                                        frame_id=frame_id)

    def _put(self, topic, msg, msgtype, t_ns):
        self.write_raw(topic, msgtype, self.store.serialize_cdr(msg, msgtype), t_ns)

    def write_image(self, topic: str, stamp_ns: int, frame: np.ndarray, *, encoding="rgb8",
                    frame_id="camera", t_ns: int | None = None) -> None:
        """A uint8 (H, W, 3) frame already in ``encoding`` as sensor_msgs/Image."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        h, w = frame.shape[:2]
        msg = self.store.types["sensor_msgs/msg/Image"](
            header=self._header(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
            is_bigendian=0, step=w * (frame.shape[2] if frame.ndim == 3 else 1),
            data=frame.reshape(-1))
        self._put(topic, msg, "sensor_msgs/msg/Image", stamp_ns if t_ns is None else t_ns)

    def write_compressed(self, topic: str, stamp_ns: int, frame: np.ndarray, fmt="jpeg",
                         frame_id="camera", t_ns: int | None = None) -> None:
        """A uint8 RGB frame as sensor_msgs/CompressedImage (jpeg or png)."""
        from PIL import Image
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(
            buf, format="JPEG" if fmt == "jpeg" else "PNG")
        msg = self.store.types["sensor_msgs/msg/CompressedImage"](
            header=self._header(stamp_ns, frame_id), format=fmt,
            data=np.frombuffer(buf.getvalue(), np.uint8))
        self._put(topic, msg, "sensor_msgs/msg/CompressedImage",
                  stamp_ns if t_ns is None else t_ns)

    def write_joint_state(self, topic: str, stamp_ns: int, names, positions,
                          t_ns: int | None = None) -> None:
        """sensor_msgs/JointState with names and positions (no velocities or efforts)."""
        msg = self.store.types[JOINT_TYPE](
            header=self._header(stamp_ns, ""), name=list(names),
            position=np.ascontiguousarray(positions, dtype=np.float64),
            velocity=np.zeros(0), effort=np.zeros(0))
        self._put(topic, msg, JOINT_TYPE, stamp_ns if t_ns is None else t_ns)

    def write_target(self, topic: str, stamp_ns: int, xy, frame_id="plane",
                     t_ns: int | None = None) -> None:
        """geometry_msgs/PointStamped (x, y in metres, z = 0)."""
        msg = self.store.types[TARGET_TYPE](
            header=self._header(stamp_ns, frame_id),
            point=self.store.types["geometry_msgs/msg/Point"](x=float(xy[0]), y=float(xy[1]),
                                                              z=0.0))
        self._put(topic, msg, TARGET_TYPE, stamp_ns if t_ns is None else t_ns)


# ----------------------------------------------------------------------------- reading
def pair_nearest(frame_ns: np.ndarray, state_ns: np.ndarray, tolerance_ns: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For each frame stamp, the index of the nearest state stamp (``state_ns`` sorted) and the
    gap (ns); the index is -1 where the gap exceeds ``tolerance_ns`` or there is no state."""
    frame_ns = np.asarray(frame_ns, dtype=np.int64)
    state_ns = np.asarray(state_ns, dtype=np.int64)
    if len(state_ns) == 0:
        return np.full(len(frame_ns), -1), np.full(len(frame_ns), np.iinfo(np.int64).max)
    right = np.clip(np.searchsorted(state_ns, frame_ns), 0, len(state_ns) - 1)
    left = np.clip(right - 1, 0, len(state_ns) - 1)
    gap_r = np.abs(state_ns[right] - frame_ns)
    gap_l = np.abs(state_ns[left] - frame_ns)
    idx = np.where(gap_l <= gap_r, left, right)
    gap = np.minimum(gap_l, gap_r)
    return np.where(gap <= tolerance_ns, idx, -1), gap


@dataclass
class _Streams:
    """What one pass over the small topics found, and the image connection."""

    image_conns: list
    joint_ns: list = field(default_factory=list)
    joint_q: list = field(default_factory=list)
    target_ns: list = field(default_factory=list)
    target_xy: list = field(default_factory=list)
    image_ns: list = field(default_factory=list)


def _open_reader(bag: Path):
    from rosbags.highlevel import AnyReader, AnyReaderError
    if not bag.exists():
        raise BagError(f"bag not found: {bag}")
    try:
        reader = AnyReader([bag], default_typestore=_typestore())
        reader.open()
    except (AnyReaderError, OSError, ValueError, KeyError) as err:
        raise BagError(f"{bag}: not a readable rosbag2 (MCAP or sqlite3) bag "
                       f"({type(err).__name__}: {err})") from None
    return reader


def _connections(reader, bag: Path, topic: str, types: tuple[str, ...], what: str):
    have = {c.topic: c.msgtype for c in reader.connections}
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(have.items())) or "none"
        raise BagError(f"{bag}: no {what} topic {topic} in the bag (its topics: {listing})")
    if conns[0].msgtype not in types:
        raise BagError(f"{bag}: topic {topic} holds {conns[0].msgtype}, the {what} topic must "
                       f"be {' or '.join(types)}")
    return conns


def _deserialize(reader, raw: bytes, msgtype: str):
    """A message of the bag.  Fast-DDS (ROS 2's default middleware, and so ``ros2 bag record``
    and rclpy) ends some CDR messages with alignment padding that rosbags' strict size check
    refuses (e.g. a JointState with empty velocity and effort); the fields are read the same, so
    such a message is decoded without that check."""
    from rosbags.highlevel import AnyReaderError
    try:
        return reader.deserialize(raw, msgtype)
    except AnyReaderError as err:
        if "size mismatch" not in str(err) or len(raw) < 4 or raw[1] not in (0, 1):
            raise
    store = reader.typestore
    md = store.get_msgdef(msgtype)
    func = md.deserialize_cdr_le if raw[1] else md.deserialize_cdr_be
    return func(bytes(raw[4:]), 0, md.cls, store)[0]


def _stamp_of(msg, t_ns: int, bag_time: bool) -> int:
    if bag_time:
        return int(t_ns)
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


def _joints_of(msg, names, topic: str) -> np.ndarray:
    have = list(msg.name)
    missing = [n for n in names if n not in have]
    if missing:
        raise BagError(f"joint states on {topic} lack {', '.join(missing)} (they name "
                       f"{', '.join(have) or 'no joints'})")
    pos = np.asarray(msg.position, dtype=np.float64)
    if len(pos) != len(have):
        raise BagError(f"joint state on {topic} has {len(have)} names but {len(pos)} positions")
    return pos[[have.index(n) for n in names]]


def _scan(reader, bag, image_topic, joint_topic, target_topic, joint_names, bag_time) -> _Streams:
    st = _Streams(_connections(reader, bag, image_topic, IMAGE_TYPES, "image"))
    small = _connections(reader, bag, joint_topic, (JOINT_TYPE,), "joint state")
    if target_topic:
        small += _connections(reader, bag, target_topic, (TARGET_TYPE,), "target")
    for conn, t_ns, raw in reader.messages(connections=small + st.image_conns):
        if conn.topic == image_topic:   # only the stamp: frames are decoded in the second pass
            st.image_ns.append(int(t_ns) if bag_time else _header_stamp(raw))
            continue
        msg = _deserialize(reader, raw, conn.msgtype)
        if conn.topic == joint_topic:
            st.joint_ns.append(_stamp_of(msg, t_ns, bag_time))
            st.joint_q.append(_joints_of(msg, joint_names, joint_topic))
        else:
            st.target_ns.append(_stamp_of(msg, t_ns, bag_time))
            st.target_xy.append((msg.point.x, msg.point.y))
    for name, got in ((image_topic, st.image_ns), (joint_topic, st.joint_ns),
                      (target_topic, st.target_ns if target_topic else [0])):
        if not got:
            raise BagError(f"{bag}: topic {name} has no messages")
    return st


def decode_frame(msg, msgtype: str, topic: str) -> np.ndarray:
    """An Image (rgb8/bgr8) or CompressedImage message as uint8 RGB (H, W, 3); BagError if not."""
    if msgtype.endswith("CompressedImage"):
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(io.BytesIO(bytes(msg.data))) as img:
                return np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise BagError(f"a compressed frame on {topic} ({msg.format!r}) is unreadable: "
                           f"{err}") from None
    enc = msg.encoding.lower()
    if enc not in ("rgb8", "bgr8"):
        raise BagError(f"frames on {topic} are {msg.encoding!r}; need rgb8 or bgr8 colour")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < 3 * w or len(data) < step * h:
        raise BagError(f"a frame on {topic} has {len(data)} bytes, too few for {w}x{h} {enc}")
    frame = data[:step * h].reshape(h, step)[:, :3 * w].reshape(h, w, 3)
    return np.ascontiguousarray(frame[..., ::-1] if enc == "bgr8" else frame)


def _latest_before(times: list[int], frame_ns: np.ndarray, slack_ns: int) -> np.ndarray:
    """Index of the latest time <= frame + slack (times in bag order), -1 if none."""
    order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
    sorted_t = np.asarray(times, dtype=np.int64)[order]
    k = np.searchsorted(sorted_t, frame_ns + slack_ns, side="right") - 1
    return np.where(k >= 0, order[np.clip(k, 0, None)], -1)


def _labels(st: _Streams, bag: Path, topics: tuple[str, str, str | None], tolerance_s: float,
            placeholder, max_unpaired: float):
    """Pair frames with joint states (and targets): (frame indices, target (N, 2), q (N, 3),
    skipped {frame index: reason})."""
    image_topic, joint_topic, target_topic = topics
    tol = int(round(tolerance_s * 1e9))
    frame_ns = np.asarray(st.image_ns, dtype=np.int64)
    order = np.argsort(np.asarray(st.joint_ns, dtype=np.int64), kind="stable")
    joint_ns = np.asarray(st.joint_ns, dtype=np.int64)[order]
    joint_q = np.asarray(st.joint_q, dtype=np.float64).reshape(-1, 3)[order]
    idx, gap = pair_nearest(frame_ns, joint_ns, tol)
    if target_topic:
        k_t = _latest_before(st.target_ns, frame_ns, tol)
        target = np.asarray(st.target_xy, dtype=np.float64).reshape(-1, 2)[np.clip(k_t, 0, None)]
    else:
        k_t = np.zeros(len(frame_ns), dtype=np.int64)
        target = np.tile(np.asarray(placeholder, dtype=np.float64), (len(frame_ns), 1))
    q = joint_q[np.clip(idx, 0, None)]
    lo, hi = OMEGA_LOW, OMEGA_HIGH
    skipped = {}
    for i in range(len(frame_ns)):
        if idx[i] < 0:
            skipped[i] = (f"no joint state on {joint_topic} within {tolerance_s:g} s "
                          f"(nearest {gap[i] * 1e-9:.3f} s away)")
        elif k_t[i] < 0:
            skipped[i] = f"no target on {target_topic} before the frame"
        elif not np.all(np.isfinite(q[i])) or np.any(q[i] < lo[2:] - 1e-3) or \
                np.any(q[i] > hi[2:] + 1e-3):
            skipped[i] = f"joint state {np.round(q[i], 3).tolist()} outside the joint limits"
        elif not np.all(np.isfinite(target[i])) or np.any(target[i] < lo[:2]) or \
                np.any(target[i] > hi[:2]):
            skipped[i] = f"target {np.round(target[i], 3).tolist()} outside the workspace box"
    n = len(frame_ns)
    if len(skipped) == n or len(skipped) > max_unpaired * n:
        first = next(iter(skipped.values()))
        raise BagError(
            f"{bag}: {len(skipped)} of {n} frames on {image_topic} cannot be labelled (more "
            f"than {max_unpaired:.0%}), e.g. {first}; nearest joint-state gap "
            f"{gap.min() * 1e-9:.3f} s: are the stamps of {image_topic} and {joint_topic} "
            f"from synchronised clocks? (widen --tolerance, or --bag-time to use the recording "
            f"times)")
    keep = np.array([i for i in range(n) if i not in skipped], dtype=np.int64)
    q = np.clip(q[keep], lo[2:], hi[2:])
    return keep, target[keep], q, skipped


def _frames(reader, st: _Streams, keep: np.ndarray, topic: str):
    """Decoded RGB frames of the image topic at the kept positions, in bag order."""
    wanted = set(int(i) for i in keep)
    conns = st.image_conns
    for i, (conn, _t, raw) in enumerate(reader.messages(connections=conns)):
        if i in wanted:
            yield decode_frame(_deserialize(reader, raw, conn.msgtype), conn.msgtype, topic)


def frame_source(frames, what: str, error=None):
    """(width, height, frames_fn for :func:`~reach_core.datasets.write_dataset`) of an iterator of
    RGB frames that must all have the size of the first; ``error`` (an exception class) names
    ``what`` when one does not, or when there is no frame."""
    error = error or BagError
    first = next(frames, None)
    if first is None:
        raise error(f"{what}: no frame to write")
    h, w = first.shape[:2]

    def chunk(_t, qq, start):
        out = [first] if start == 0 else []
        while len(out) < len(qq):
            f = next(frames, None)
            if f is None:
                raise error(f"{what}: fewer frames than labels")
            if f.shape[:2] != (h, w):
                raise error(f"{what}: frames change size ({f.shape[1]}x{f.shape[0]} after "
                            f"{w}x{h})")
            out.append(f)
        return out
    return w, h, chunk


def _header_stamp(raw) -> int:
    """The header stamp of a CDR Image/CompressedImage without decoding its pixels."""
    import struct
    sec, nsec = struct.unpack("<iI" if raw[1] else ">iI", bytes(raw[4:12]))
    return sec * 1_000_000_000 + nsec


def dataset_from_bag(bag: str | os.PathLike, out: str | os.PathLike, *, image_topic: str,
                     joint_topic: str, target_topic: str | None = None, tolerance_s: float = 0.02,
                     joint_names=JOINT_NAMES, target_mode: str | None = None,
                     placeholder_target=PLACEHOLDER_TARGET, bag_time: bool = False,
                     max_unpaired_fraction: float = 0.5, image_format: str = "png",
                     progress: bool = False, tool=None) -> Path:
    """Build a ``reach.dataset/1`` folder from a rosbag2 bag (see the module docstring).

    ``target_mode``: ``in_image`` (the physical target is in the frames; the default with a target
    topic) or ``virtual`` (painted at load time; forced without a target topic).  ``bag_time``
    pairs by recording time instead of header stamps.  Frames that cannot be labelled are skipped
    and listed in dataset.json (``"bag"``); more than ``max_unpaired_fraction`` of them is an error.
    ``tool``: the recorded robot's tool point (None: the paper's), recorded in dataset.json.
    """
    bag = Path(bag)
    if tolerance_s <= 0:
        raise BagError(f"tolerance must be positive, got {tolerance_s!r} s")
    if target_mode not in (None, "in_image", "virtual"):
        raise BagError(f"target mode must be in_image or virtual, got {target_mode!r}")
    if not target_topic:
        target_mode = "virtual"
    reader = _open_reader(bag)
    try:
        st = _scan(reader, bag, image_topic, joint_topic, target_topic, tuple(joint_names),
                   bag_time)
        keep, target, q, skipped = _labels(st, bag, (image_topic, joint_topic, target_topic),
                                           tolerance_s, placeholder_target, max_unpaired_fraction)
        w, h, chunk = frame_source(_frames(reader, st, keep, image_topic),
                                   f"{bag}: topic {image_topic}")

        meta = {"source": "rosbag2", "bag": {
            "path": str(bag.resolve()), "image_topic": image_topic, "joint_topic": joint_topic,
            "target_topic": target_topic or None, "tolerance_s": tolerance_s,
            "stamps": "bag" if bag_time else "header", "joints": list(joint_names),
            "frames": len(st.image_ns), "skipped": {str(k): v for k, v in skipped.items()}}}
        if not target_topic:
            meta["placeholder_target"] = [float(v) for v in placeholder_target]
        if (w, h) != (DEFAULT_CAMERA.width, DEFAULT_CAMERA.height):
            meta["camera"] = {"width": w, "height": h}
        return write_dataset(out, chunk, target, q, target_mode=target_mode or "in_image",
                             meta=meta, image_format=image_format, progress=progress, tool=tool)
    finally:
        reader.close()


def bag_topics(bag: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """Topics of a bag: {topic: (message type, message count)}."""
    reader = _open_reader(Path(bag))
    try:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
    finally:
        reader.close()


def dataset_to_bag(dataset: str | os.PathLike, bag: str | os.PathLike, *,
                   image_topic="/camera/image_raw", joint_topic="/robot/joint_states",
                   target_topic: str | None = "/reach/target", period_s: float = 0.1,
                   storage: str = "mcap") -> Path:
    """Write a frame dataset as a bag (a frame, its joint state and target every ``period_s``):
    the inverse of :func:`dataset_from_bag`, for tests and for sharing with ROS tools."""
    from .datasets import _read_labels, _read_meta, _camera_from, read_frame
    root = Path(dataset)
    meta = _read_meta(root)
    camera = _camera_from(meta)
    if meta.get("net_images"):
        raise BagError(f"{root}: network-image datasets hold no camera frames to put in a bag")
    _rows, names, phys, _bad = _read_labels(root)
    with BagWriter(bag, storage) as w:
        for k, (name, lab) in enumerate(zip(names, phys)):
            t = 1_000_000_000 + int(k * period_s * 1e9)
            w.write_image(image_topic, t, read_frame(root / name, camera))
            w.write_joint_state(joint_topic, t, JOINT_NAMES, lab[2:])
            if target_topic:
                w.write_target(target_topic, t, lab[:2])
    return Path(bag)


__all__ = ["BagError", "BagWriter", "pair_nearest", "decode_frame", "dataset_from_bag",
           "dataset_to_bag", "bag_topics", "DATASET_FORMAT"]
