"""Fuzz the Baxter bridge: malformed joint states and deltas, every JointCommand checked.

A probe node plays the robot and the controller around a running ``baxter_bridge`` process:

* the robot: an arm standing still at ``q_arm`` (s1 next to its upper limit), its genuine joint
  states at 100 Hz on /robot/joint_states;
* the controller: valid deltas (+1 step on s1, so the bridge pushes against the limit) at 20 Hz
  on /reach/joint_delta;
* the fuzzer, on the very same publishers (a second publisher would be refused as a second
  commander: see tests/test_safety_graph.py): malformed joint states and deltas of each kind of
  :data:`STATE_KINDS` and :data:`DELTA_KINDS`, shuffled among the genuine messages.

Every JointCommand the bridge sends is checked: inside Baxter's joint limits (less the bridge's
margin) and within one step of the arm's genuine position. :func:`run` returns the counts
(:class:`FuzzReport`); tests/test_safety_graph.py runs a few hundred of each kind and
bench/bench_fuzz.py many more. The fuzz comes in bursts with genuine traffic between them, so the
bridge, which holds for ``fault_hold_s`` after an implausible state, also commands during the
fuzz.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from baxter_core_msgs.msg import JointCommand
from rclpy.time import Time
from sensor_msgs.msg import JointState

from reach_ros.common import ACTIVE_JOINTS, COMMAND_QOS, JOINT_LIMITS, LEFT_ARM_JOINTS, STATE_QOS

NAMES = list(LEFT_ARM_JOINTS)
STEP = 0.04
#: the genuine arm: s1 0.017 rad below its upper limit, the rest mid-range
Q_ARM = np.array([0.0, 1.03, 0.0, 1.0, 0.0, 0.3, 0.0])
STATE_KINDS = ('nan', 'wrong_names', 'duplicated_names', 'out_of_limits', 'spoofed_offset',
               'future_stamp', 'stale_stamp', 'wrong_size')
DELTA_KINDS = ('nan', 'wrong_names', 'duplicated_names', 'too_large', 'future_stamp',
               'stale_stamp', 'wrong_size')


@dataclass
class FuzzReport:
    """What a fuzz run tried and what the bridge did."""

    tried: dict = field(default_factory=dict)      # 'state:nan' -> messages sent
    commands: int = 0
    out_of_limits: int = 0
    far_from_measured: int = 0                     # more than one step from the arm
    commands_after: int = 0                        # once the fuzz stopped (the bridge serves on)
    crashed: bool = False
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f'inputs tried by kind ({sum(self.tried.values())} in all):']
        out += [f'  {k:28s} {v}' for k, v in sorted(self.tried.items())]
        out += [f'JointCommands during the fuzz: {self.commands}',
                f'out-of-limit commands: {self.out_of_limits}',
                f'commands more than one step from the measured position: '
                f'{self.far_from_measured}',
                f'crashes: {int(self.crashed)}',
                f'commands after the fuzz (the bridge serves on): {self.commands_after}',
                f'fuzz time: {self.seconds:.1f} s']
        return out


def _stamp(probe, ahead_s: float = 0.0):
    return Time(nanoseconds=probe.now_ns() + int(ahead_s * 1e9)).to_msg()


def joint_state(probe, q, names=NAMES, ahead_s: float = 0.0) -> JointState:
    m = JointState()
    m.header.stamp = _stamp(probe, ahead_s)
    m.name = list(names)
    m.position = [float(v) for v in q]
    return m


def bad_state(kind: str, probe, rng) -> JointState:
    """One malformed joint state of ``kind`` (STATE_KINDS) around the genuine arm."""
    q = Q_ARM.copy()
    if kind == 'nan':
        q[rng.integers(7)] = rng.choice([np.nan, np.inf, -np.inf])
        return joint_state(probe, q)
    if kind == 'wrong_names':
        names = list(NAMES)
        names[rng.integers(7)] = rng.choice(['right_s1', 'left_s9', '', 'head_pan'])
        return joint_state(probe, q, names)
    if kind == 'duplicated_names':
        i = int(rng.integers(7))
        q2 = np.append(q, q[i] + rng.uniform(-1, 1))
        return joint_state(probe, q2, NAMES + [NAMES[i]])
    if kind == 'out_of_limits':
        i = int(rng.integers(7))
        lo, hi = JOINT_LIMITS[NAMES[i]]
        q[i] = hi + rng.uniform(0.05, 3.0) if rng.random() < 0.5 else lo - rng.uniform(0.05, 3.0)
        return joint_state(probe, q)
    if kind == 'spoofed_offset':
        q[1:6:2] += rng.choice([-0.3, 0.3])
        return joint_state(probe, q)
    if kind == 'future_stamp':
        return joint_state(probe, q + rng.normal(0, 0.2, 7), ahead_s=rng.uniform(0.5, 1e5))
    if kind == 'stale_stamp':
        return joint_state(probe, q + rng.normal(0, 0.2, 7), ahead_s=-rng.uniform(1.0, 1e5))
    if kind == 'wrong_size':
        n = int(rng.choice([0, 3, 6, 8]))
        m = joint_state(probe, q)
        m.position = [float(v) for v in rng.uniform(-1, 1, n)]
        return m
    raise ValueError(kind)


def delta(probe, names, values, ahead_s: float = 0.0) -> JointState:
    m = JointState()
    m.header.stamp = _stamp(probe, ahead_s)
    m.name, m.position = list(names), [float(v) for v in values]
    return m


def bad_delta(kind: str, probe, rng) -> JointState:
    """One malformed joint delta of ``kind`` (DELTA_KINDS)."""
    names = list(ACTIVE_JOINTS)
    v = rng.choice([-STEP, 0.0, STEP], 3)
    if kind == 'nan':
        v[rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf])
        return delta(probe, names, v)
    if kind == 'wrong_names':
        names[rng.integers(3)] = rng.choice(['left_s0', 'left_w2', 'right_e1', 'x'])
        return delta(probe, names, v)
    if kind == 'duplicated_names':
        return delta(probe, names + [names[0]], list(v) + [STEP])
    if kind == 'too_large':
        v[rng.integers(3)] = rng.choice([-1, 1]) * rng.uniform(0.05, 10.0)
        return delta(probe, names, v)
    if kind == 'future_stamp':
        return delta(probe, names, v, ahead_s=rng.uniform(0.5, 1e5))
    if kind == 'stale_stamp':
        return delta(probe, names, v, ahead_s=-rng.uniform(1.0, 1e5))
    if kind == 'wrong_size':
        m = delta(probe, names, v)
        m.position = [float(x) for x in rng.uniform(-0.04, 0.04, int(rng.choice([0, 1, 2, 4])))]
        return m
    raise ValueError(kind)


class Harness:
    """The probe's robot, controller and command monitor around a running bridge."""

    def __init__(self, probe, margin: float = 0.0):
        self.probe = probe
        self.states = probe.publisher(JointState, '/robot/joint_states', STATE_QOS)
        self.deltas = probe.publisher(JointState, '/reach/joint_delta', COMMAND_QOS)
        self.lo = np.array([JOINT_LIMITS[n][0] for n in NAMES]) + margin
        self.hi = np.array([JOINT_LIMITS[n][1] for n in NAMES]) - margin
        self.commands = probe.record(JointCommand, '/robot/limb/left/joint_command', COMMAND_QOS)
        self.on = True
        self.drop = 0.0                 # share of the genuine joint states dropped (lossy link)
        self.rng = np.random.default_rng(1)
        probe.node.create_timer(0.01, self._robot)
        probe.node.create_timer(0.05, self._controller)

    def _robot(self):
        if self.on and self.rng.random() >= self.drop:
            self.states.publish(joint_state(self.probe, Q_ARM))

    def _controller(self):
        if self.on:
            self.deltas.publish(delta(self.probe, ACTIVE_JOINTS, [STEP, 0.0, 0.0]))

    def check(self, start: int) -> tuple[int, int, int]:
        """(commands, out of limits, more than one step from the arm) from index ``start``."""
        cmds = [m for _, m in self.commands[start:]]
        if not cmds:
            return 0, 0, 0
        c = np.array([m.command for m in cmds])
        out = int(np.sum(np.any((c < self.lo - 1e-9) | (c > self.hi + 1e-9), axis=1)))
        far = int(np.sum(np.any(np.abs(c - Q_ARM) > STEP + 1e-9, axis=1)))
        return len(cmds), out, far


def run(probe, alive, per_kind: int = 200, seed: int = 0, batch: int = 20, burst: int = 200,
        gap_s: float = 0.5) -> FuzzReport:
    """Fuzz a running bridge (``alive()``: whether its process runs) with ``per_kind`` messages
    of each kind; the harness must already be commanding (see :func:`warm_up`).

    The messages go out in bursts of ``burst`` with ``gap_s`` of genuine traffic between them:
    the bridge holds (fault_hold_s) after an implausible state and commands again in the gaps,
    so commands during the fuzz are checked too (give a gap longer than the bridge's hold)."""
    h = probe.fuzz_harness
    rng = np.random.default_rng(seed)
    jobs = [('state', k) for k in STATE_KINDS for _ in range(per_kind)] + \
        [('delta', k) for k in DELTA_KINDS for _ in range(per_kind)]
    order = rng.permutation(len(jobs))
    report = FuzzReport()
    start = len(h.commands)
    t0 = time.monotonic()
    for i, j in enumerate(order):
        what, kind = jobs[j]
        if what == 'state':
            h.states.publish(bad_state(kind, probe, rng))
        else:
            h.deltas.publish(bad_delta(kind, probe, rng))
        report.tried[f'{what}:{kind}'] = report.tried.get(f'{what}:{kind}', 0) + 1
        if i % burst == burst - 1:
            probe.spin_for(gap_s)
        elif i % batch == batch - 1:
            probe.spin_for(0.01)
    probe.spin_for(0.5)
    report.seconds = time.monotonic() - t0
    after = len(h.commands)
    report.commands, report.out_of_limits, report.far_from_measured = h.check(start)
    # the bridge holds for fault_hold_s after the last implausible state, then serves on
    probe.spin_until(lambda: len(h.commands) > after + 5, 10.0)
    n, out, far = h.check(after)
    report.commands_after = n
    report.out_of_limits += out
    report.far_from_measured += far
    report.crashed = not alive()
    return report


def warm_up(probe, timeout: float = 20.0, margin: float = 0.0) -> bool:
    """Start the harness (once) and wait until the bridge commands."""
    if not hasattr(probe, 'fuzz_harness'):
        probe.fuzz_harness = Harness(probe, margin)
    h = probe.fuzz_harness
    n = len(h.commands)
    return probe.spin_until(lambda: len(h.commands) > n + 5, timeout)
