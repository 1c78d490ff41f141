"""A real Baxter (ROS 1) through rosbridge: the mapping against messages in rosbridge's shape, and
the baxter_rosbridge node end to end against a fake rosbridge_server.

* reach_core.baxter_rosbridge (ROS-free) on tests/fixtures/baxter_rosbridge/: Baxter's whole-robot
  /robot/joint_states (head, both arms, torso) and the gripper's own messages on the same topic,
  /robot/state (AssemblyState) enabled, disabled and e-stopped; and the JointCommand JSON it makes.
* the node, with the safety bridge in front of it (real.launch.py's command lines), against a
  websocket server started here that speaks rosbridge's protocol (advertise, subscribe, publish):
  it streams the fixture's joint states with current stamps, records what the node publishes.
  Only the bridge's commands reach "Baxter"; none while the robot is disabled, while joint states
  are stale or while the connection is down (each logged once); it reconnects by itself.
"""
from __future__ import annotations

import asyncio
import copy
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from reach_core import baxter_rosbridge as bx

FIXTURES = Path(__file__).parent / 'fixtures' / 'baxter_rosbridge'


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def arm_messages():
    return [op['msg'] for op in fixture('joint_states.json') if 'left_s1' in op['msg']['name']]


# ------------------------------------------------------------------------------------ mapping
def test_the_plane_joints_are_the_ones_of_the_kinematics_and_the_bridge():
    from reach_core.kinematics import JOINT_NAMES
    from reach_ros.common import ACTIVE_JOINTS, LEFT_ARM_JOINTS
    assert bx.PLANE_JOINTS == tuple(JOINT_NAMES) == ACTIVE_JOINTS == ('left_s1', 'left_e1', 'left_w1')
    assert bx.LEFT_ARM_JOINTS == LEFT_ARM_JOINTS


def test_baxters_joint_states_give_the_seven_left_arm_joints_in_baxter_interface_order():
    msg = arm_messages()[0]
    arm = bx.arm_state_from_rosbridge(msg)
    assert arm.names == ('left_s0', 'left_s1', 'left_e0', 'left_e1', 'left_w0', 'left_w1', 'left_w2')
    by_name = dict(zip(msg['name'], msg['position']))   # Baxter sends them sorted by name
    assert arm.position == [by_name[n] for n in arm.names]
    assert arm.position[1] == -0.5518 and arm.position[3] == 1.0952 and arm.position[5] == 0.5012
    assert arm.velocity == [dict(zip(msg['name'], msg['velocity']))[n] for n in arm.names]
    assert arm.effort[1] == -11.848
    assert arm.stamp_ns == 1764980000 * 10**9 + 120_000_000


def test_the_grippers_joint_states_on_the_same_topic_are_skipped_not_an_error():
    grippers = [op['msg'] for op in fixture('joint_states.json')
                if op['msg']['name'][0].startswith('l_gripper')]
    assert grippers and all(bx.arm_state_from_rosbridge(m) is None for m in grippers)


@pytest.mark.parametrize('change, words', [
    (lambda m: m['name'].remove('left_w2'), "['left_w2'] missing"),
    (lambda m: m['position'].__setitem__(5, None), 'not a number'),
    (lambda m: m['position'].__setitem__(5, float('nan')), 'NaN'),
    (lambda m: m['position'].pop(), 'position has 16 entries for 17 names'),
    (lambda m: m['name'].__setitem__(0, 'left_s1'), 'duplicated'),
    (lambda m: m['header'].pop('stamp'), 'stamp'),
    (lambda m: m['header'].__setitem__('stamp', {'secs': 1, 'nsecs': -1}), 'not a valid time'),
])
def test_a_bad_joint_state_is_refused_naming_the_field(change, words):
    msg = copy.deepcopy(arm_messages()[0])
    change(msg)
    with pytest.raises(bx.BaxterMessageError, match=words.replace('[', r'\[').replace(']', r'\]')):
        bx.arm_state_from_rosbridge(msg)


def test_ros1_and_ros2_stamps_read_alike():
    assert bx.stamp_to_ns({'secs': 3, 'nsecs': 5}) == bx.stamp_to_ns({'sec': 3, 'nanosec': 5}) \
        == 3_000_000_005
    assert bx.stamp_to_ns(bx.ns_to_stamp(1764980000_120000000)) == 1764980000_120000000


def test_a_bridge_command_becomes_baxters_joint_command_json_in_position_mode():
    q = [0.01, -0.55, 0.0, 1.1, 0.0, 0.5, 0.0]
    out = bx.joint_command_to_rosbridge(1, bx.LEFT_ARM_JOINTS, q, None)
    assert out == {'mode': 1, 'command': q, 'names': list(bx.LEFT_ARM_JOINTS)}
    json.dumps(out, allow_nan=False)      # what roslibpy sends is strict JSON
    # in another order: reordered to baxter_interface's
    out = bx.joint_command_to_rosbridge(1, bx.LEFT_ARM_JOINTS[::-1], q[::-1], None)
    assert out['command'] == q


def test_joints_left_out_of_a_command_are_held_where_they_are_measured():
    measured = dict(zip(bx.LEFT_ARM_JOINTS, bx.arm_state_from_rosbridge(arm_messages()[0]).position))
    out = bx.joint_command_to_rosbridge(1, ['left_s1', 'left_e1', 'left_w1'], [-0.5, 1.1, 0.5],
                                        measured)
    assert out['command'] == [0.0034, -0.5, -0.0019, 1.1, 0.0011, 0.5, -0.0027]
    with pytest.raises(bx.BaxterMessageError, match='measured position is unknown'):
        bx.joint_command_to_rosbridge(1, ['left_s1'], [0.0], None)


@pytest.mark.parametrize('mode, names, values, words', [
    (2, bx.LEFT_ARM_JOINTS, [0.0] * 7, 'only POSITION_MODE'),
    (1, ['right_s1'], [0.0], 'left-arm joints only'),
    (1, ['left_s1', 'left_s1'], [0.0, 0.0], 'left-arm joints only'),
    (1, ['left_s1'], [float('inf')], 'NaN or infinite'),
    (1, ['left_s1', 'left_e1'], [0.0], '2 names but 1'),
])
def test_a_command_in_another_mode_or_with_bad_values_is_refused(mode, names, values, words):
    with pytest.raises(bx.BaxterMessageError, match=words):
        bx.joint_command_to_rosbridge(mode, names, values, dict.fromkeys(bx.LEFT_ARM_JOINTS, 0.0))


def test_only_an_enabled_robot_that_is_not_stopped_may_be_commanded():
    states = fixture('robot_state.json')
    assert bx.robot_state_ok(states['enabled']['msg']) == (True, '')
    ok, why = bx.robot_state_ok(states['disabled']['msg'])
    assert not ok and 'not enabled' in why and 'enable_robot.py -e' in why
    ok, why = bx.robot_state_ok(states['estop']['msg'])
    assert not ok and 'stopped' in why
    assert not bx.robot_state_ok({'data': True})[0]
    assert bx.enable_message() == {'data': True} and bx.ENABLE == ('/robot/set_super_enable',
                                                                   'std_msgs/Bool')


# ------------------------------------------------------------------------------------ fake server
class FakeRosbridge:
    """rosbridge_server's protocol on a local port: records every op a client sends, and streams
    the fixture's left-arm joint states (stamped now, with the gripper's messages between them)
    at 50 Hz and /robot/state at 10 Hz to the clients that subscribed."""

    def __init__(self, port: int):
        self.port, self.ops = port, []
        self.streaming, self.robot_state = True, 'enabled'
        self.inject: list[dict] = []     # extra /robot/joint_states messages, sent once each
        self.clients: dict = {}          # websocket -> set of subscribed topics
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None
        self.start()

    def start(self):
        from websockets.asyncio.server import serve

        async def listen():
            return await serve(self._client, '127.0.0.1', self.port)
        self.server = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(5)
        self.task = asyncio.run_coroutine_threadsafe(self._stream(), self.loop)

    def stop(self):
        """Close the server and every connection (rosbridge gone)."""
        self.task.cancel()
        self.server.close()
        asyncio.run_coroutine_threadsafe(self.server.wait_closed(), self.loop).result(5)
        self.clients.clear()

    def published(self, topic=bx.JOINT_COMMAND[0]):
        return [op['msg'] for op in list(self.ops) if op.get('op') == 'publish'
                and op.get('topic') == topic]

    async def _client(self, ws):
        from websockets.exceptions import ConnectionClosed
        self.clients[ws] = set()
        try:
            async for text in ws:
                op = json.loads(text)
                self.ops.append(op)
                if op.get('op') == 'subscribe':
                    self.clients[ws].add(op['topic'])
        except ConnectionClosed:        # the client went away (the test's reconnects)
            self.clients.pop(ws, None)

    async def _send(self, topic, msg):
        for ws, topics in list(self.clients.items()):
            if topic in topics:
                try:
                    await ws.send(json.dumps({'op': 'publish', 'topic': topic, 'msg': msg}))
                except Exception:  # noqa: BLE001 - a client that went away
                    self.clients.pop(ws, None)

    async def _stream(self):
        ops, states, k = fixture('joint_states.json'), fixture('robot_state.json'), 0
        while True:
            while self.inject:
                await self._send(bx.JOINT_STATES[0], self.inject.pop(0))
            if self.streaming:
                for op in ops[2 * (k % 3): 2 * (k % 3) + 2]:      # an arm and a gripper message
                    msg = copy.deepcopy(op['msg'])
                    msg['header']['stamp'] = bx.ns_to_stamp(time.time_ns())
                    await self._send(bx.JOINT_STATES[0], msg)
                if k % 5 == 0:
                    await self._send(bx.ROBOT_STATE[0], states[self.robot_state]['msg'])
            k += 1
            await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ the node
rclpy = pytest.importorskip('rclpy')

from baxter_core_msgs.msg import JointCommand  # noqa: E402
from reach_bringup.graph import Graph  # noqa: E402
from reach_bringup.probe import Probe, pick_domain_id  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from reach_ros.common import COMMAND_QOS, SENSOR_QOS  # noqa: E402


@pytest.fixture(scope='module')
def probe():
    p = Probe(pick_domain_id(18), 'test_baxter_rosbridge')
    yield p
    p.close()


def start(probe, server, nodes, extra=None):
    g = Graph('real.launch.py', {'rosbridge': 'true', 'rosbridge_host': '127.0.0.1',
                                 'rosbridge_port': str(server.port)},
              domain_id=int(probe.context.get_domain_id()), only=nodes,
              extra_args={'baxter_rosbridge': extra} if extra else None).start()
    if not probe.spin_until(lambda: 'connected to rosbridge' in g.log('baxter_rosbridge'), 20):
        g.stop()
        pytest.fail(f'baxter_rosbridge did not connect:\n{g.logs()}')
    return g


def test_only_the_safety_bridges_commands_reach_baxter_as_joint_command_json(probe):
    """deltas -> baxter_bridge -> baxter_rosbridge -> (rosbridge) Baxter: each command Baxter gets
    is one the bridge published, in POSITION_MODE for the seven left-arm joints, within one step
    of the arm as Baxter measured it."""
    server = FakeRosbridge(free_port())
    bridge_cmds = probe.record(JointCommand, '/robot/limb/left/joint_command', COMMAND_QOS)
    states = probe.record(JointState, '/robot/joint_states', SENSOR_QOS)
    g = start(probe, server, ['baxter_bridge', 'baxter_rosbridge'])
    try:
        assert probe.spin_until(lambda: len(states) > 10, 10), g.logs()
        assert list(states[-1][1].name) == list(bx.LEFT_ARM_JOINTS)
        pub = probe.publisher(JointState, '/reach/joint_delta', COMMAND_QOS)
        assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 10.0)
        probe.spin_for(0.5)
        for _ in range(20):
            m = JointState(name=['left_s1', 'left_e1', 'left_w1'], position=[0.04, -0.04, 0.0])
            m.header.stamp = Time(nanoseconds=probe.now_ns()).to_msg()
            pub.publish(m)
            probe.spin_for(0.1)
        assert probe.spin_until(lambda: len(server.published()) >= 10, 5), \
            (len(bridge_cmds), g.logs())
        advertised = [op for op in server.ops if op.get('op') == 'advertise']
        assert {(op['topic'], op['type']) for op in advertised} == {bx.JOINT_COMMAND}
        sent = {tuple(np.round(m.command, 9)) for _, m in bridge_cmds}
        measured = np.array(bx.arm_state_from_rosbridge(arm_messages()[0]).position)
        for msg in server.published():
            assert msg['mode'] == 1 and msg['names'] == list(bx.LEFT_ARM_JOINTS)
            assert tuple(np.round(msg['command'], 9)) in sent, 'a command the bridge never sent'
            assert np.all(np.abs(np.array(msg['command']) - measured) <= 0.04 + 2e-3)
        assert 'Traceback' not in g.logs()
    finally:
        g.stop()
        server.stop()


def _command(pub, q=(0.0034, -0.52, -0.0019, 1.09, 0.0011, 0.5, -0.0027)):
    pub.publish(JointCommand(mode=1, names=list(bx.LEFT_ARM_JOINTS), command=list(q)))


def _count(log: str, text: str) -> int:
    return log.count(text)


def test_no_command_reaches_baxter_while_disabled_stale_or_disconnected_and_it_reconnects(probe):
    """The adapter alone, the probe standing in for the bridge: each cause stops forwarding,
    logged once, and forwarding resumes (after a reconnect too) when it is gone."""
    server = FakeRosbridge(free_port())
    server.robot_state = 'disabled'
    g = start(probe, server, ['baxter_rosbridge'], ['-p', 'enable_robot:=true'])
    pub = probe.publisher(JointCommand, '/robot/limb/left/joint_command', COMMAND_QOS)
    log = lambda: g.log('baxter_rosbridge')  # noqa: E731

    def drive(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            _command(pub)
            probe.spin_for(0.05)
    try:
        drive(2.0)
        assert 'not forwarding commands to Baxter: the robot is not enabled' in log(), log()
        assert server.published() == [], 'a command reached a disabled robot'
        assert server.published(bx.ENABLE[0]) == [{'data': True}], 'enable_robot: one enable'
        bad = copy.deepcopy(arm_messages()[0])
        bad['name'].remove('left_e1')
        server.inject.append(bad)
        drive(0.5)
        assert "joint state from Baxter skipped: left-arm joints ['left_e1'] missing" in log()
        server.robot_state = 'enabled'
        drive(1.5)
        n = len(server.published())
        assert n > 5 and "forwarding the safety bridge's commands to Baxter" in log()
        server.robot_state = 'estop'
        drive(1.0)
        assert 'the robot is stopped' in log()
        server.robot_state, server.streaming = 'enabled', False     # the arm goes quiet
        drive(1.0)
        n = len(server.published())
        drive(1.0)
        assert len(server.published()) == n and 'no joint state from Baxter for 0.5 s' in log()
        server.streaming = True
        server.stop()                                                # rosbridge goes away
        drive(2.0)
        assert _count(log(), 'not forwarding commands to Baxter: no connection') == 1, log()
        server.ops.clear()
        server.start()                                               # and comes back
        assert probe.spin_until(lambda: _count(log(), 'connected to rosbridge') >= 2, 15), log()
        drive(1.5)
        assert len(server.published()) > 5, 'forwarding did not resume after the reconnect'
        assert {op['topic'] for op in server.ops if op['op'] == 'subscribe'} == {
            bx.JOINT_STATES[0], bx.ROBOT_STATE[0]}, 'not re-subscribed after the reconnect'
        assert g.alive()['baxter_rosbridge'] and 'Traceback' not in log()
    finally:
        g.stop()
        server.stop()


def test_the_adapter_runs_only_with_rosbridge_true_and_gets_the_host_and_port():
    from reach_bringup import launch_spec
    for launch in ('real.launch.py', 'collect.launch.py'):
        spec = launch_spec.read(str(Path(__file__).parents[1] / 'launch' / launch))
        node = spec.node('baxter_rosbridge')
        assert not launch_spec.runs(spec, node), 'on by default'
        assert launch_spec.runs(spec, node, {'rosbridge': 'true'})
        assert all(launch_spec.runs(spec, n) for n in spec.nodes if not n.condition)
        with pytest.raises(ValueError, match='rosbridge:=yes'):
            launch_spec.runs(spec, node, {'rosbridge': 'yes'})
        cmd = launch_spec.node_command(spec, node, {'rosbridge': 'true', 'rosbridge_host':
                                                    'baxter.local', 'rosbridge_port': '9091'},
                                       config_dir='/cfg')
        assert "rosbridge_host:='baxter.local'" in cmd and 'rosbridge_port:=9091' in cmd
        assert cmd[cmd.index('--enclave') + 1] == '/reach/robot'
