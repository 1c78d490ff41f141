"""collect_images: drive the arm through a joint grid and record camera frames + joint angles.

The paper's real-image collection (section 5.1): the robot is moved through fixed
configurations spread uniformly in joint space and a camera frame is recorded at each, labelled
with the joint angles. The result is a dataset folder in the format that
:mod:`reach_core.datasets` loads (``reach train perception --real DIR``)::

    out_dir/labels.csv     image, target_x, target_y, left_s1, left_e1, left_w1, omega_...
    out_dir/images/NNNNN.png   frame of grid point NNNNN (the camera's size, 8-bit RGB)
    out_dir/dataset.json   format, "target": "virtual", the camera geometry, the tool point
                           (``tool``), the grid, and the grid points skipped so far (with the
                           reason)

How the arm is moved: exactly as the controller moves it, through the Baxter bridge. The node
publishes joint deltas of at most ``max_step`` rad per joint on ``joint_delta``
(/reach/joint_delta) at ``step_rate_hz``; the bridge turns them into position commands, clamped
to the joint limits and to one step from the measured position. The next delta is computed from
the bridge's last command (``joint_command``, listened to) so that the arm walks straight to the
grid point. Once the measured pitch joints have stayed within ``settle_tolerance`` of the grid
point for ``settle_time_s``, the node holds (zero deltas) and records the first frame taken
after that moment, labelled with the joint state measured at the frame's stamp. The roll joints
(s0, e0, w0, w2) are held by the bridge at its ``hold_positions``.

The frames hold no target: every row carries the placeholder target ``target_x``/``target_y``
and dataset.json says ``"target": "virtual"``, so the loader paints the paper's virtual target
into the frames (``--virtual-targets`` at random positions).

Safety and bad input:

* a grid point outside the joint limits (less ``limit_margin``) is skipped at once; one the arm
  does not reach within ``move_timeout_s`` (the bridge's limit margin, a collision, the arm
  disabled) is skipped after that time; both are logged, kept in dataset.json and listed at the
  end, and the next grid point is tried;
* a camera that drops frames: each grid point waits ``frame_timeout_s`` for a fresh frame, up to
  ``frame_retries`` more times; ``max_missed_frames`` grid points in a row without a frame stop
  the run (the camera is gone) with an error;
* a full disk (less than ``min_free_mb`` free before a frame, or a failed write): the run stops
  with an error;
* every frame is written to a temporary file and renamed, and labels.csv and dataset.json are
  rewritten to a temporary file and renamed after each frame, so a crash, Ctrl-C or a full disk
  never leaves a half-written file behind: what was recorded stays loadable. Run the same
  command again to resume: grid points already in labels.csv are not visited again (a folder
  collected with another grid is refused).

Recording into a bag: with ``bag_path`` set, every camera frame and joint state the node receives
is also written, as received (CDR), to a rosbag2 folder with MCAP storage at that path (a new
folder; if it exists, ``_1``, ``_2``, ... is appended), by :class:`reach_core.bags.BagWriter`.
``reach data from-bag BAG --out DIR --image-topic ... --joint-topic ...`` turns it into a dataset;
the topics are the node's resolved ``image`` and ``joint_states`` names (logged at the start).

The grid, the joint-limits check and the dataset writer (:class:`CollectionStore`: atomic writes,
resume, disk-space checks) are ROS-free, in :mod:`reach_core.datasets.collection`; this node
moves the arm, takes the frames and hands them to the store.

Exit codes: 0 every grid point recorded; 3 the run finished but some grid points were skipped;
1 stopped by an error (no joint states, camera gone, disk full, bad parameters or folder).
"""
from __future__ import annotations

import os
import sys
from collections import deque

import numpy as np
import rclpy
from baxter_core_msgs.msg import JointCommand
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from reach_core.datasets import CollectError, CollectionStore, joint_grid, out_of_limits
from reach_core.datasets import DiskFullError as DiskFullError   # (tests import it from here)

from .common import (ACTIVE_JOINTS, CAMERA_PARAMS, COMMAND_QOS, LEFT_ARM_JOINTS,
                     SENSOR_QOS, FatalNodeError, ImageError, Param, camera_from, cleanup_started,
                     declare_params, finite, image_to_rgb, init, joint_positions, length,
                     in_range, non_negative, one_of, positive, report, spin_until, stamp_ns,
                     tool_param)


def _counts(v) -> str | None:
    if len(v) != 3 or any(not isinstance(x, int) or not 1 <= x <= 1000 for x in v):
        return f'must be 3 integers in 1..1000 (points per joint s1, e1, w1), got {v!r}'
    return None


PARAMS = [
    Param('out_dir', '', 'dataset folder to write (created; an existing collection with the same '
          'grid is resumed)', read_only=True),
    tool_param(),
    Param('grid_min', [-1.2, 0.3, -1.0], 'lowest grid value (rad) of left_s1, left_e1, left_w1',
          length(3, in_range(-3.2, 3.2))),
    Param('grid_max', [0.6, 2.3, 1.6], 'highest grid value (rad) of left_s1, left_e1, left_w1',
          length(3, in_range(-3.2, 3.2))),
    Param('grid_counts', [5, 5, 5], 'grid points per joint (s1, e1, w1); 1: the grid_min value',
          _counts),
    Param('target_x', 0.5, 'placeholder target x (m) written to every row: the frames hold no '
          'target, the loader paints virtual ones', finite),
    Param('target_y', 0.2, 'placeholder target y (m) written to every row', finite),
    Param('image_format', 'png', 'png or jpg', one_of('png', 'jpg')),
    Param('max_step', 0.04, 'largest joint delta sent (rad per step); at most the bridge\'s '
          'max_step', positive),
    Param('step_rate_hz', 20.0, 'joint deltas per second while moving (and zero deltas while '
          'holding)', positive),
    Param('limit_margin', 0.0, 'grid points closer than this (rad) to a joint limit are skipped',
          non_negative),
    Param('settle_tolerance', 0.01, 'the arm is at a grid point when every pitch joint is this '
          'close (rad)', positive),
    Param('settle_time_s', 0.3, 'and has stayed there this long (s)', non_negative),
    Param('move_timeout_s', 20.0, 'a grid point not reached within this time (s) is skipped as '
          'unreachable', positive),
    Param('frame_timeout_s', 2.0, 'wait this long (s) for a frame taken after the arm settled',
          positive),
    Param('frame_retries', 2, 'further waits of frame_timeout_s before a grid point is skipped',
          non_negative),
    Param('max_missed_frames', 3, 'grid points in a row without a frame before the run stops',
          positive),
    Param('joint_state_timeout_s', 10.0, 'stop when no joint state came for this long (s)',
          positive),
    Param('bag_path', '', 'also record the received frames and joint states into this rosbag2 '
          '(MCAP) folder; empty: no bag', read_only=True),
    Param('min_free_mb', 50.0, 'stop before writing when the disk of out_dir has less free space '
          '(MB; up to 1e12, more than any disk: never write)', in_range(0.0, 1e12)),
] + CAMERA_PARAMS

TOPICS = {
    'joint_states': ('sub', 'sensor_msgs/msg/JointState'),
    'image': ('sub', 'sensor_msgs/msg/Image'),
    'joint_command': ('sub', 'baxter_core_msgs/msg/JointCommand'),
    'joint_delta': ('pub', 'sensor_msgs/msg/JointState'),
}

EXIT_OK, EXIT_ERROR, EXIT_SKIPPED = 0, 1, 3


# ------------------------------------------------------------------------------ the node
class Collector(Node):
    def __init__(self):
        super().__init__('collect_images')
        self.p = declare_params(self, PARAMS)
        if not self.p['out_dir']:
            raise FatalNodeError('out_dir is empty: give the dataset folder to write, e.g. '
                                 '-p out_dir:=data/real_frames')
        try:
            self.camera = camera_from(self.p)
        except ValueError as err:
            raise FatalNodeError(f'bad camera parameters: {err}') from None
        if np.any(np.asarray(self.p['grid_max']) < np.asarray(self.p['grid_min'])):
            raise FatalNodeError(f"grid_max {self.p['grid_max']} is below grid_min "
                                 f"{self.p['grid_min']}")
        self.grid = joint_grid(self.p['grid_min'], self.p['grid_max'], self.p['grid_counts'])
        cam = {'width': self.camera.width, 'height': self.camera.height,
               'px_per_m': self.camera.px_per_m, 'origin_px': list(self.camera.origin_px),
               'roi': list(self.camera.roi), 'net_size': self.camera.net_size}
        self.store = CollectionStore(self.p['out_dir'], self.grid, cam,
                                     (self.p['target_x'], self.p['target_y']),
                                     self.p['image_format'], self.p['min_free_mb'], self.p['tool'])
        try:
            self.store.open()
        except CollectError as err:
            raise FatalNodeError(str(err)) from None
        self.names7 = list(LEFT_ARM_JOINTS)
        self.active = [self.names7.index(n) for n in ACTIVE_JOINTS]
        self.states: deque[tuple[int, np.ndarray]] = deque(maxlen=400)   # (stamp ns, q3)
        self.state_rx_ns = 0
        self.last_cmd: np.ndarray | None = None      # the bridge's last command (7)
        self.frame: Image | None = None
        self.exit_code: int | None = None
        self.recorded_now = 0
        self.missed_in_row = 0
        self.todo = [i for i in range(len(self.grid)) if not self.store.done(i)]
        self.index: int | None = None
        self.state = 'wait'
        self.t_state = self._now()
        self.delta_pub = self.create_publisher(JointState, 'joint_delta', COMMAND_QOS)
        self.bag = None
        js = self.create_subscription(JointState, 'joint_states', self.on_joints, SENSOR_QOS)
        im = self.create_subscription(Image, 'image', self.on_image, SENSOR_QOS)
        self.bag_topics = {'joint_states': js.topic_name, 'image': im.topic_name}
        if self.p['bag_path']:
            self._open_bag(self.p['bag_path'])
        self.create_subscription(JointCommand, 'joint_command', self.on_command, COMMAND_QOS)
        self.create_timer(1.0 / self.p['step_rate_hz'], self.tick)
        self.get_logger().info(
            f'collecting {len(self.grid)} grid points of {", ".join(ACTIVE_JOINTS)} into '
            f'{self.store.root}: {self.store.resumed} already recorded, {len(self.todo)} to go')

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _open_bag(self, path: str):
        from reach_core.bags import BagWriter
        base, k = os.path.abspath(path), 0
        path = base
        while os.path.exists(path):
            k += 1
            path = f'{base}_{k}'
        try:
            self.bag = BagWriter(path)
        except (OSError, ValueError) as err:
            raise FatalNodeError(f'cannot create the bag {path}: {err}') from None
        self.get_logger().info(f"recording {self.bag_topics['image']} and "
                               f"{self.bag_topics['joint_states']} into {path} (MCAP)")

    def _to_bag(self, key: str, msgtype: str, msg):
        if self.bag is None:
            return
        from rclpy.serialization import serialize_message
        try:
            self.bag.write_raw(self.bag_topics[key], msgtype, serialize_message(msg), self._now())
        except (OSError, ValueError) as err:
            report(self, 'collect4', f'bag recording stopped: {err}')
            self._close_bag()

    def _close_bag(self):
        bag, self.bag = self.bag, None
        if bag is not None:
            try:
                bag.close()
            except (OSError, ValueError) as err:
                self.get_logger().error(f'closing the bag {bag.path} failed: {err}')

    def destroy_node(self):
        self._close_bag()
        return super().destroy_node()

    # -- inputs
    def on_joints(self, msg: JointState):
        self._to_bag('joint_states', 'sensor_msgs/msg/JointState', msg)
        q = joint_positions(msg, ACTIVE_JOINTS)
        if q is None or not np.all(np.isfinite(q)):
            report(self, 'collect0', 'joint state without finite left_s1/e1/w1: ignored')
            return
        self.states.append((stamp_ns(msg.header.stamp), q))
        self.state_rx_ns = self._now()

    def on_image(self, msg: Image):
        self._to_bag('image', 'sensor_msgs/msg/Image', msg)
        self.frame = msg

    def on_command(self, msg: JointCommand):
        if list(msg.names) == self.names7 and len(msg.command) == 7:
            self.last_cmd = np.asarray(msg.command, dtype=np.float64)

    # -- outputs
    def send(self, delta: np.ndarray):
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(ACTIVE_JOINTS)
        msg.position = [float(v) for v in delta]
        self.delta_pub.publish(msg)

    # -- the sequence
    def _enter(self, state: str):
        self.state, self.t_state = state, self._now()

    def _elapsed(self) -> float:
        return (self._now() - self.t_state) * 1e-9

    def _finish(self, code: int, text: str | None = None):
        if text:
            self.get_logger().error(text)
        done, total = len(self.store.rows), len(self.grid)
        self.get_logger().info(
            f'{done} of {total} grid points recorded in {self.store.root} '
            f'({self.recorded_now} this run)')
        if self.store.skipped:
            lines = '; '.join(f'#{i} {np.round(self.grid[i], 3).tolist()}: {why}'
                              for i, why in sorted(self.store.skipped.items()))
            self.get_logger().warn(f'{len(self.store.skipped)} grid points skipped: {lines}')
        if code == EXIT_OK and self.store.skipped:
            code = EXIT_SKIPPED
        self.exit_code = code

    def _next_point(self):
        while self.todo:
            i = self.todo.pop(0)
            why = out_of_limits(self.grid[i], self.p['limit_margin'])
            if why:
                self._skip(i, f'unreachable: {why}')
                if self.exit_code is not None:
                    return
                continue
            try:
                self.store.check_space()      # do not move the arm to a point it cannot record
            except CollectError as err:
                self._finish(EXIT_ERROR, str(err))
                return
            self.index = i
            self.within_since = None
            self.frame_waits = 0
            self._enter('move')
            return
        self.index = None
        self._finish(EXIT_OK)

    def _skip(self, i: int, reason: str):
        self.get_logger().warn(f'grid point #{i} {np.round(self.grid[i], 3).tolist()} skipped: '
                               f'{reason}')
        try:
            self.store.skip(i, reason)
        except CollectError as err:
            self._finish(EXIT_ERROR, str(err))

    def tick(self):
        """One step of the sequence: wait for joint states, move to the grid point, capture."""
        if self.exit_code is not None:
            return
        now = self._now()
        stale = (now - self.state_rx_ns) * 1e-9 > self.p['joint_state_timeout_s']
        if self.state == 'wait':
            self._wait(stale)
            return
        if stale:
            self._finish(EXIT_ERROR, f"joint states stopped for more than "
                                     f"{self.p['joint_state_timeout_s']:g} s; the arm holds")
            return
        q = self.states[-1][1]
        goal = self.grid[self.index]
        if self.state == 'move':
            self._move(q, goal, now)
        else:
            self._capture(q, goal)

    def _wait(self, stale: bool):
        """Start with the first grid point once joint states come; give up after the timeout."""
        if self.states and not stale:
            self._next_point()
        elif self._elapsed() > self.p['joint_state_timeout_s']:
            self._finish(EXIT_ERROR, f"no joint states for {self.p['joint_state_timeout_s']:g}"
                         f' s: is the robot (or fake_baxter) running and the arm enabled?')

    def _step(self, q: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The joint delta (at most max_step a joint) that aims straight at the goal."""
        # the bridge adds the delta to its last command while the arm is within one step of
        # it, else to the measured position: do the same to aim straight at the goal
        base = q.copy()
        if self.last_cmd is not None:
            last = self.last_cmd[self.active]
            if np.all(np.abs(last - q) <= self.p['max_step'] + 1e-9):
                base = last
        step = self.p['max_step']
        delta = np.clip(goal - base, -step, step)
        delta[np.abs(delta) < 1e-6] = 0.0
        return delta

    def _move(self, q: np.ndarray, goal: np.ndarray, now: int):
        """Step towards the grid point; capture once settled there, skip it after move_timeout_s."""
        self.send(self._step(q, goal))
        if np.max(np.abs(goal - q)) <= self.p['settle_tolerance']:
            if self.within_since is None:
                self.within_since = now
            if (now - self.within_since) * 1e-9 >= self.p['settle_time_s']:
                self.settled_ns = now
                self._enter('capture')
        else:
            self.within_since = None
        if self.state == 'move' and self._elapsed() > self.p['move_timeout_s']:
            self._skip(self.index, f"unreachable: not within {self.p['settle_tolerance']:g} "
                       f"rad after {self.p['move_timeout_s']:g} s (the arm is at "
                       f"{np.round(q, 3).tolist()}: joint limit margin, collision or arm "
                       f"disabled?)")
            if self.exit_code is None:
                self._next_point()

    def _capture(self, q: np.ndarray, goal: np.ndarray):
        """Hold still and record the first frame taken after the arm settled."""
        self.send(np.zeros(3))
        if np.max(np.abs(goal - q)) > self.p['settle_tolerance']:
            report(self, 'collect1', 'the arm moved away from the grid point while holding: '
                   'settling again', 'warn')
            self.within_since = None
            self._enter('move')
            return
        msg = self.frame
        if msg is not None and stamp_ns(msg.header.stamp) >= self.settled_ns:
            self._record(msg)
            return
        if self._elapsed() > self.p['frame_timeout_s']:
            self._no_frame()

    def _no_frame(self):
        """No frame within frame_timeout_s: wait again, or skip the point (and stop after
        max_missed_frames points in a row without one)."""
        self.frame_waits += 1
        if self.frame_waits <= self.p['frame_retries']:
            report(self, 'collect2', f"no camera frame within {self.p['frame_timeout_s']:g} s "
                   f'at grid point #{self.index}: waiting again', 'warn', 0.0)
            self._enter('capture')
            return
        self.missed_in_row += 1
        self._skip(self.index, f"no camera frame in {(self.p['frame_retries'] + 1) * self.p['frame_timeout_s']:g} s "
                   f'(camera dropping frames?)')
        if self.exit_code is not None:
            return
        if self.missed_in_row >= self.p['max_missed_frames']:
            self._finish(EXIT_ERROR, f'camera: no frames at {self.missed_in_row} grid points '
                         f'in a row; stopping (check the camera on the image topic, then run '
                         f'the same command again to resume)')
            return
        self._next_point()

    def _record(self, msg: Image):
        try:
            frame = image_to_rgb(msg, self.camera.width, self.camera.height)
        except ImageError as err:
            report(self, 'collect3', f'camera frame refused: {err}')
            self.frame = None
            return
        t = stamp_ns(msg.header.stamp)
        # the joint state measured when the frame was taken (the latest one not after it)
        q = self.states[-1][1]
        for ts, qs in reversed(self.states):
            if ts <= t:
                q = qs
                break
        try:
            name = self.store.record(self.index, frame, q)
        except CollectError as err:
            self._finish(EXIT_ERROR, str(err))
            return
        self.recorded_now += 1
        self.missed_in_row = 0
        self.get_logger().info(f'#{self.index} {name}: q = {np.round(q, 4).tolist()} '
                               f'({len(self.store.rows)}/{len(self.grid)})')
        self._next_point()


def main(args=None) -> int:
    stop = init(args)
    node = None
    code = EXIT_ERROR
    try:
        node = Collector()
        spin_until(node, stop, done=lambda: node.exit_code is not None)
        if node.exit_code is not None:
            code = node.exit_code
        else:   # Ctrl-C: a clean stop (exit 0), the collection resumes next time
            code = EXIT_OK
            node.get_logger().warn(f'interrupted: {len(node.store.rows)} grid points recorded in '
                                   f'{node.store.root} are kept; run again to resume')
    except (KeyboardInterrupt, ExternalShutdownException):
        code = EXIT_OK
        if node is not None:
            print(f'[collect_images] interrupted: {len(node.store.rows)} grid points recorded in '
                  f'{node.store.root} are kept; run again to resume', file=sys.stderr)
    except FatalNodeError as err:
        if node is not None:
            node.get_logger().fatal(str(err))
        else:
            print(f'[collect_images] error: {err}', file=sys.stderr)
    finally:
        cleanup_started(stop, code)
        if node is not None:
            try:
                node.destroy_node()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    raise SystemExit(main())
