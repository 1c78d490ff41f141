"""The safety rules over real rclpy and DDS: fuzz, second commanders, run-time parameters, future
stamps, dropped joint states, kill -9 and restart of each node of the sim graph under latency,
the ros2_control output.

Each node runs as its own process with the command line of its launch file
(reach_bringup.graph), in a ROS_DOMAIN_ID of this test run.
"""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

pytest.importorskip('rclpy')

from baxter_core_msgs.msg import JointCommand  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType  # noqa: E402
from rcl_interfaces.msg import ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from reach_bringup import fuzz  # noqa: E402
from reach_bringup.graph import Graph  # noqa: E402
from reach_bringup.probe import Probe, pick_domain_id  # noqa: E402
from reach_interfaces.msg import SceneConfig  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from reach_ros.common import (COMMAND_QOS, JOINT_LIMITS, LEFT_ARM_JOINTS,  # noqa: E402
                              STATE_QOS, stamp_ns)

import reach_core  # noqa: E402

MODELS = os.path.join(os.path.dirname(reach_core.__file__), 'models')
DOF1 = os.path.join(MODELS, 'control_dof1.pt')
LO7 = np.array([JOINT_LIMITS[n][0] for n in LEFT_ARM_JOINTS])
HI7 = np.array([JOINT_LIMITS[n][1] for n in LEFT_ARM_JOINTS])


def start(domain, name, launch='sim.launch.py', overrides=None, extra=None):
    return Graph(launch, overrides, domain_id=domain, only=[name],
                 extra_args={name: extra} if extra else None).start()


def wait_log(probe, graph, name, text, timeout=10.0) -> bool:
    return probe.spin_until(lambda: text in graph.log(name), timeout)


@pytest.fixture()
def probe():
    p = Probe(pick_domain_id(31), 'test_safety')
    yield p
    p.close()


def domain_of(probe) -> int:
    return int(probe.context.get_domain_id())


# ------------------------------------------------------------------------------------ fuzz
def test_a_fuzzed_bridge_never_commands_outside_the_limits_or_a_step_from_the_arm(probe):
    """A few hundred malformed joint states and deltas of each kind, among genuine ones: zero
    commands outside the limits or more than one step from the arm, no crash, and the bridge
    commands again once the fuzz stops. With a short fault_hold_s the bridge commands in the
    gaps between bursts of fuzz, so those commands are checked too."""
    g = start(domain_of(probe), 'baxter_bridge', extra=['-p', 'fault_hold_s:=0.2'])
    try:
        assert fuzz.warm_up(probe), g.log('baxter_bridge')
        report = fuzz.run(probe, lambda: g.alive()['baxter_bridge'], per_kind=200, burst=200,
                          gap_s=0.3)
        print('\n'.join(report.lines()))
        assert sum(report.tried.values()) == 200 * (len(fuzz.STATE_KINDS) + len(fuzz.DELTA_KINDS))
        assert report.out_of_limits == 0 and report.far_from_measured == 0, report.lines()
        assert not report.crashed
        assert report.commands > 20 and report.commands_after > 5, g.log('baxter_bridge')[-3000:]
        log = g.log('baxter_bridge')
        for text in ('duplicated joint names', 'outside the joint limits', 'a jump of',
                     'in the future', 'delta refused'):
            assert text in log, text
    finally:
        probe.fuzz_harness.on = False
        g.stop()
    assert 'Traceback' not in g.log('baxter_bridge')


# ------------------------------------------------------------------------------------ commanders
def test_the_bridge_refuses_to_command_while_a_second_node_publishes_deltas(probe):
    g = start(domain_of(probe), 'baxter_bridge')
    intruder = None
    try:
        assert fuzz.warm_up(probe), g.log('baxter_bridge')
        h = probe.fuzz_harness
        intruder = Probe(domain_of(probe), 'intruder')
        pub = intruder.publisher(JointState, '/reach/joint_delta', COMMAND_QOS)
        # the names come with DDS discovery: a first error may still say _NODE_NAME_UNKNOWN_
        assert wait_log(probe, g, 'baxter_bridge', '/intruder'), g.log('baxter_bridge')
        assert 'refusing to command: /reach/joint_delta has 2 publishers' in g.log('baxter_bridge')
        assert '/test_safety' in g.log('baxter_bridge')
        probe.spin_for(0.3)
        n = len(h.commands)
        probe.spin_for(1.5)
        assert len(h.commands) == n, 'commands went out beside a second commander'
        intruder.node.destroy_publisher(pub)
        intruder.close()
        intruder = None
        assert probe.spin_until(lambda: len(h.commands) > n + 5, 10.0), g.log('baxter_bridge')
        # and the safety parameters cannot be changed over the network
        req = SetParameters.Request()
        req.parameters = [ParameterMsg(name='max_step', value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=1.0))]
        reply = probe.call(SetParameters, '/baxter_bridge/set_parameters', req)
        assert not reply.results[0].successful
    finally:
        if intruder is not None:
            intruder.close()
        probe.fuzz_harness.on = False
        g.stop()
    assert 'Traceback' not in g.log('baxter_bridge')


# ------------------------------------------------------------------------------------ stamps
def test_one_future_stamped_scene_configuration_does_not_stall_the_controller(probe):
    deltas = probe.record(JointState, '/reach/joint_delta', COMMAND_QOS)
    g = start(domain_of(probe), 'controller', overrides={'control_model': DOF1})
    try:
        pub = probe.publisher(SceneConfig, '/scene_config', COMMAND_QOS)
        assert wait_log(probe, g, 'controller', '1-DoF', 40.0), g.log('controller')
        assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 10.0)
        probe.spin_for(0.5)

        def scene(ahead=0.0):
            m = SceneConfig()
            m.header.stamp = Time(nanoseconds=probe.now_ns() + int(ahead * 1e9)).to_msg()
            m.target_x, m.target_y = 0.5, 0.2
            m.left_s1, m.left_e1, m.left_w1 = -0.5, 1.0, 0.5
            pub.publish(m)
            probe.spin_for(0.05)
        for _ in range(3):
            scene(ahead=100.0)
        assert wait_log(probe, g, 'controller', 'in the future'), g.log('controller')
        n = len(deltas)
        for _ in range(10):
            scene()
        assert probe.spin_until(lambda: len(deltas) >= n + 5, 5.0), g.log('controller')
        assert g.alive()['controller']
    finally:
        g.stop()


def test_fake_baxter_refuses_a_latency_that_overflows_and_keeps_publishing(probe):
    states = probe.record(JointState, '/robot/joint_states', STATE_QOS)
    g = start(domain_of(probe), 'fake_baxter', extra=['-p', 'latency_s:=1e308'])
    try:
        assert probe.spin_until(lambda: len(states) > 20, 20.0), g.log('fake_baxter')
        assert "parameter 'latency_s' must be a number in [0, 5]" in g.log('fake_baxter')
        assert g.alive()['fake_baxter']
    finally:
        g.stop()
    assert 'Traceback' not in g.log('fake_baxter')


# ------------------------------------------------------------------------------------ kill -9
#: deep queues: the probe may take messages late under load, but loses none
DEEP_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)


def record_sent(probe, msg_type, topic: str) -> list:
    """Keep every message on ``topic`` as (DDS source timestamp ns: when its node published it,
    its publisher's sequence number, message): unlike the probe's receive time and order, these
    do not depend on when the probe's callbacks run."""
    store = []
    probe.node.create_subscription(msg_type, topic, lambda msg, info: store.append(
        (info['source_timestamp'], info['publication_sequence_number'], msg)), DEEP_QOS)
    return store


def _commands_ok(cmds, states, max_step=0.04, timeout_s=0.5) -> tuple[int, int, int]:
    """(commands outside the limits, commands more than one step from the arm: jumps, commands
    checked for jumps) among commands and joint states recorded by :func:`record_sent`.

    The bridge commands at most ``max_step`` from its measured position: the last joint state
    it accepted, so one published before the command and stamped at most
    joint_state_timeout_s (``timeout_s``) before it (plus 0.1 s: the bridge checks the age just
    before it publishes). A command more than one step from every such state is a jump; one with
    no such state at all too. Checked are the commands for which the probe has every such state:
    not those where it may have missed some (DDS discovery: a restarted robot's first joint
    states may reach the bridge and not yet the probe), as its publisher's sequence numbers
    tell."""
    window = int((timeout_s + 0.1) * 1e9)
    states = sorted(states, key=lambda s: s[0])
    sent = np.array([t for t, _, _ in states])
    seq = np.array([n for _, n, _ in states])
    stamp = np.array([stamp_ns(m.header.stamp) for _, _, m in states])
    q_s = np.array([[m.position[m.name.index(n)] for n in LEFT_ARM_JOINTS] for _, _, m in states])
    # where the probe may have missed joint states: before its first one unless that was its
    # publisher's first, between two not in sequence (unless the second is a new publisher's
    # first), after its last one
    missed = (seq[1:] != seq[:-1] + 1) & (seq[1:] != 1)
    holes = [(0, sent[0])] if len(seq) and seq[0] != 1 else []
    holes += list(zip(sent[:-1][missed], sent[1:][missed])) + [(sent[-1] if len(sent) else 0, np.inf)]
    out = jumps = checked = 0
    for t, _, m in cmds:
        c = np.array(m.command)
        out += int(np.any((c < LO7 - 1e-9) | (c > HI7 + 1e-9)))
        if any(h0 < t and h1 > t - window for h0, h1 in holes):
            continue
        checked += 1
        used = (sent < t) & (stamp >= t - window)
        gap = np.min(np.max(np.abs(q_s[used] - c), axis=1)) if used.any() else np.inf
        jumps += int(gap > max_step + 1e-9)
    return out, jumps, checked


def test_under_latency_killing_any_node_stops_the_commands_and_a_restart_does_not_jump(probe):
    """The sim graph with 0.2 s old, noisy joint states (fake_baxter latency_s, noise_std; the
    bridge's timeout is 0.5 s): kill -9 of each node in turn: once its link is down no command
    goes out; restarted, the graph commands again, never outside the limits or with a jump."""
    domain = domain_of(probe)
    cmds = record_sent(probe, JointCommand, '/robot/limb/left/joint_command')
    states = record_sent(probe, JointState, '/robot/joint_states')
    args = {'control_model': DOF1, 'latency_s': '0.2', 'noise_std': '0.003'}
    graph = Graph('sim.launch.py', args, domain_id=domain).start()
    parts = {}
    try:
        assert probe.spin_until(lambda: len(cmds) > 20, 60.0), graph.logs()
        for name in ('controller', 'fake_baxter', 'perception', 'sim_camera', 'baxter_bridge'):
            owner = parts.get(name, graph)
            os.kill(owner.procs[name].pid, signal.SIGKILL)
            probe.spin_for(0.8)             # the bridge's timeouts are 0.5 s
            n = len(cmds)
            probe.spin_for(0.7)
            assert len(cmds) == n, f'{len(cmds) - n} commands while {name} was down'
            parts[name] = start(domain, name, overrides=args)
            assert probe.spin_until(lambda: len(cmds) > n + 10, 40.0), \
                f'no commands after {name} restarted:\n{parts[name].logs()}'
        probe.spin_for(0.3)                 # the joint states that follow the last commands
        out, jumps, checked = _commands_ok(cmds, states)
        assert out == 0 and jumps == 0, (out, jumps)
        assert checked >= len(cmds) // 2, f'{checked} of {len(cmds)} commands checked for jumps'
    finally:
        for g in parts.values():
            g.stop()
        graph.stop()


# ------------------------------------------------------------------------------------ drops, latency
def test_dropped_joint_states_hold_the_arm_and_commanding_resumes_without_a_jump(probe):
    """Half of the joint states lost: commanding goes on, every command in bounds; all of them
    lost for a second: no command after the timeout; back: commands again, in bounds."""
    g = start(domain_of(probe), 'baxter_bridge')
    try:
        assert fuzz.warm_up(probe), g.log('baxter_bridge')
        h = probe.fuzz_harness
        n0 = len(h.commands)
        h.drop = 0.5
        assert probe.spin_until(lambda: len(h.commands) > n0 + 12, 5.0), \
            'no commanding with half of the joint states lost'
        assert h.check(n0)[1:] == (0, 0)
        h.drop = 1.0
        probe.spin_for(0.8)
        n1 = len(h.commands)
        probe.spin_for(1.0)
        assert len(h.commands) == n1, 'commands while no joint state came'
        h.drop = 0.0
        assert probe.spin_until(lambda: len(h.commands) > n1 + 10, 5.0), g.log('baxter_bridge')
        assert h.check(n0)[1:] == (0, 0)
    finally:
        probe.fuzz_harness.on = False
        g.stop()


# ------------------------------------------------------------------------------------ ros2_control
def test_the_ros2_control_output_carries_the_same_checked_commands_in_the_controllers_order(probe):
    """output both: a forward_command_controller stand-in (the probe) on /commands gets, for each
    JointCommand, the positions of ros2_control_joints in that order; fuzzed states change
    nothing about that."""
    from std_msgs.msg import Float64MultiArray
    forward = probe.record(Float64MultiArray, '/forward_position_controller/commands',
                           COMMAND_QOS)
    g = start(domain_of(probe), 'baxter_bridge', extra=[
        '-p', 'output:=both', '-p', 'ros2_control_joints:=[left_w1, left_s1, left_e1]',
        '-p', 'fault_hold_s:=0.2', '-r', 'commands:=/forward_position_controller/commands'])
    try:
        assert fuzz.warm_up(probe), g.log('baxter_bridge')
        h = probe.fuzz_harness
        fuzz.run(probe, lambda: g.alive()['baxter_bridge'], per_kind=20, burst=100, gap_s=0.3)
        probe.spin_for(0.3)
        joint = np.array([m.command for _, m in h.commands])
        ros2 = np.array([m.data for _, m in forward])
        assert len(ros2) > 20 and ros2.shape[1] == 3
        idx = [LEFT_ARM_JOINTS.index(n) for n in ('left_w1', 'left_s1', 'left_e1')]
        # the same commands, in the same order (the two topics may differ by the last message)
        n = min(len(joint), len(ros2))
        np.testing.assert_array_equal(ros2[:n - 1], joint[:n - 1][:, idx])
        assert np.all(ros2 <= HI7[idx] + 1e-9) and np.all(ros2 >= LO7[idx] - 1e-9)
        assert np.all(np.abs(ros2 - fuzz.Q_ARM[idx]) <= 0.04 + 1e-9)
    finally:
        probe.fuzz_harness.on = False
        g.stop()
    assert 'Traceback' not in g.log('baxter_bridge')


def test_the_bridge_can_drive_only_a_ros2_control_arm(probe):
    from std_msgs.msg import Float64MultiArray
    forward = probe.record(Float64MultiArray, '/commands', COMMAND_QOS)
    cmds = probe.record(JointCommand, '/robot/limb/left/joint_command', COMMAND_QOS)
    g = start(domain_of(probe), 'baxter_bridge', extra=['-p', 'output:=ros2_control'])
    try:
        h = fuzz.Harness(probe)
        assert probe.spin_until(lambda: len(forward) > 10, 20.0), g.log('baxter_bridge')
        assert len(forward[-1][1].data) == 7 and not cmds
        h.on = False
    finally:
        g.stop()
