"""The live view: the arm's geometry it draws (ROS-free), and the live_view node's Foxglove
WebSocket server read by a client written here against Foxglove's protocol (serverInfo, advertise,
subscribe, binary messageData), each typed message decoded with the protobuf schema the server
advertises (google.protobuf), JSON channels with json.
"""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from reach_core import kinematics, live_view as lv

ROOT = Path(__file__).resolve().parents[1]


def test_the_drawn_arm_ends_where_the_kinematics_put_the_hand_and_has_its_link_lengths():
    rng = np.random.default_rng(0)
    for q in rng.uniform(kinematics.JOINT_LIMITS[:, 0], kinematics.JOINT_LIMITS[:, 1], (20, 3)):
        pts = lv.arm_points(q)
        assert pts.shape == (4, 2) and np.allclose(pts[0], 0.0)
        assert np.allclose(pts[-1], kinematics.forward(q))
        assert np.allclose(np.linalg.norm(np.diff(pts, axis=0), axis=1),
                           kinematics.BAXTER_LEFT.link_lengths)


def test_the_estimate_record_names_the_target_joints_hand_and_distance():
    q = np.array([-0.5, 1.1, 0.5])
    r = lv.estimate_record((0.6, -0.1), q, 'ground_truth')
    hand = kinematics.forward(q)
    assert (r['hand_x'], r['hand_y']) == pytest.approx(tuple(hand))
    assert r['distance_m'] == pytest.approx(np.hypot(hand[0] - 0.6, hand[1] + 0.1))
    assert r['left_e1'] == 1.1 and r['source'] == 'ground_truth'
    json.dumps(r, allow_nan=False)
    with pytest.raises(ValueError, match='NaN'):
        lv.estimate_record((float('nan'), 0.0), q, 'x')


def test_the_live_view_is_off_unless_its_launch_argument_turns_it_on():
    from reach_bringup import launch_spec
    for launch in ('sim.launch.py', 'real.launch.py'):
        spec = launch_spec.read(str(ROOT / 'launch' / launch))
        node = spec.node('live_view')
        assert not launch_spec.runs(spec, node)
        assert launch_spec.runs(spec, node, {'live_view': 'true'})
        cmd = launch_spec.node_command(spec, node, {'live_view': 'true', 'live_view_port': '9000'},
                                       config_dir='/cfg')
        assert 'port:=9000' in cmd


# ------------------------------------------------------------------------------------ client
class FoxgloveClient:
    """Foxglove WebSocket protocol client in a thread: subscribes to every advertised channel and
    keeps each message, decoded, by topic."""

    def __init__(self, port: int):
        self.port, self.channels, self.messages = port, {}, {}
        self.server_info = None
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.task = asyncio.run_coroutine_threadsafe(self._run(), self.loop)

    def close(self):
        self.task.cancel()

    async def _run(self):
        from websockets.asyncio.client import connect
        async with connect(f'ws://127.0.0.1:{self.port}',
                           subprotocols=['foxglove.sdk.v1', 'foxglove.websocket.v1'],
                           max_size=None) as ws:
            subs = {}
            async for frame in ws:
                if isinstance(frame, str):
                    subs.update(await self._control(ws, json.loads(frame), len(subs)))
                elif frame[0] == 1:                               # messageData
                    sub, _ = struct.unpack_from('<IQ', frame, 1)
                    ch = self.channels[subs[sub]]
                    self.messages.setdefault(ch['topic'], []).append(decode(ch, frame[13:]))

    async def _control(self, ws, op: dict, n: int) -> dict:
        if op['op'] == 'serverInfo':
            self.server_info = op
        if op['op'] != 'advertise':
            return {}
        new = {}
        for ch in op['channels']:
            self.channels[ch['id']] = ch
            new[n + len(new) + 1] = ch['id']
        await ws.send(json.dumps({'op': 'subscribe', 'subscriptions': [
            {'id': sid, 'channelId': cid} for sid, cid in new.items()]}))
        return new


def decode(channel: dict, payload: bytes):
    if channel['encoding'] == 'json':
        return json.loads(payload)
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel['schema']))
    pool = descriptor_pool.DescriptorPool()
    pending = list(files.file)
    while pending:                       # dependencies first
        f = pending.pop(0)
        try:
            pool.Add(f)
        except TypeError:
            pending.append(f)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(channel['schemaName']))
    return cls.FromString(payload)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ the node
rclpy = pytest.importorskip('rclpy')

from baxter_core_msgs.msg import JointCommand  # noqa: E402
from reach_bringup.graph import Graph  # noqa: E402
from reach_bringup.probe import Probe, pick_domain_id  # noqa: E402
from reach_interfaces.msg import SceneConfig, TrialStatus  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402

from reach_ros.common import (COMMAND_QOS, LATCHED_QOS, LEFT_ARM_JOINTS, SENSOR_QOS,  # noqa: E402
                              fill_image)


@pytest.fixture(scope='module')
def probe():
    p = Probe(pick_domain_id(27), 'test_live_view')
    yield p
    p.close()


def test_the_live_view_streams_camera_estimate_and_joints_to_a_foxglove_client(probe):
    port = free_port()
    g = Graph('sim.launch.py', {'live_view': 'true', 'live_view_port': str(port)},
              domain_id=int(probe.context.get_domain_id()), only=['live_view']).start()
    client = None
    try:
        assert probe.spin_until(lambda: 'Foxglove WebSocket server' in g.log('live_view'), 20), \
            g.logs()
        client = FoxgloveClient(port)
        assert probe.spin_until(lambda: len(client.channels) == len(lv.CHANNELS), 10), \
            (client.channels, g.logs())
        topics = {c['topic']: c for c in client.channels.values()}
        for topic, schema in lv.CHANNELS.items():
            c = topics[topic]
            assert c['encoding'] == 'json' if schema == 'json' else \
                (c['schemaName'], c['encoding']) == (schema, 'protobuf'), c
        stamp = Time(nanoseconds=probe.now_ns()).to_msg()
        pubs = {t: probe.publisher(m, t, qos) for t, m, qos in (
            ('/camera/image_raw', Image, SENSOR_QOS), ('/perception/debug_image', Image, SENSOR_QOS),
            ('/scene_config', SceneConfig, COMMAND_QOS), ('/robot/joint_states', JointState,
                                                          SENSOR_QOS),
            ('/robot/limb/left/joint_command', JointCommand, COMMAND_QOS),
            ('/reach/status', TrialStatus, LATCHED_QOS))}
        red = np.zeros((48, 64, 3), np.uint8)
        red[..., 0] = 220
        bad = fill_image(Image(), red)
        bad.encoding = 'mono16'
        q7 = [0.0, -0.5, 0.0, 1.1, 0.0, 0.5, 0.0]
        msgs = {
            '/camera/image_raw': fill_image(Image(), red),
            '/perception/debug_image': fill_image(Image(), red[..., ::-1].copy()),
            '/scene_config': SceneConfig(target_x=0.6, target_y=-0.1, left_s1=-0.5, left_e1=1.1,
                                         left_w1=0.5, source='ground_truth'),
            '/robot/joint_states': JointState(name=list(LEFT_ARM_JOINTS), position=q7),
            '/robot/limb/left/joint_command': JointCommand(mode=1, names=list(LEFT_ARM_JOINTS),
                                                           command=q7),
            '/reach/status': TrialStatus(trial=2, state=1, state_name='RUNNING', steps=7),
        }
        for m in msgs.values():
            if hasattr(m, 'header'):
                m.header.stamp = stamp
        want = {'/camera/image', '/perception/debug_image', '/reach/scene', '/reach/estimate',
                '/reach/joints/measured', '/reach/joints/commanded', '/reach/status'}

        def publish_all():
            pubs['/camera/image_raw'].publish(bad)
            for t, m in msgs.items():
                pubs[t].publish(m)
            probe.spin_for(0.2)
            return want <= set(client.messages)
        assert any(publish_all() for _ in range(30)), (sorted(client.messages), g.logs())
        m = client.messages
        jpeg = m['/camera/image'][-1]
        assert jpeg.format == 'jpeg'
        import cv2
        img = cv2.imdecode(np.frombuffer(jpeg.data, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (48, 64, 3) and img[..., 2].mean() > 180 and img[..., 0].mean() < 40
        dbg = cv2.imdecode(np.frombuffer(m['/perception/debug_image'][-1].data, np.uint8), 1)
        assert dbg[..., 0].mean() > 180, 'the debug image is its own channel'
        est = m['/reach/estimate'][-1]
        hand = kinematics.forward([-0.5, 1.1, 0.5])
        assert est['target_x'] == 0.6 and est['hand_x'] == pytest.approx(hand[0])
        meas = m['/reach/joints/measured'][-1]
        assert [j.name for j in meas.joints] == list(LEFT_ARM_JOINTS)
        assert [j.position for j in meas.joints] == pytest.approx(q7)
        assert [j.position for j in m['/reach/joints/commanded'][-1].joints] == pytest.approx(q7)
        entities = {e.id: e for u in m['/reach/scene'] for e in u.entities}
        assert set(entities) == {'estimate', 'measured'}
        line = entities['estimate'].lines[0]
        assert np.allclose([(p.x, p.z) for p in line.points], lv.arm_points([-0.5, 1.1, 0.5]))
        assert entities['estimate'].frame_id == lv.PLANE_FRAME
        sphere = entities['estimate'].spheres[0].pose.position
        assert (sphere.x, sphere.z) == pytest.approx((0.6, -0.1))
        assert m['/reach/status'][-1]['state'] == 'RUNNING'
        assert 'image skipped: unsupported image encoding' in g.log('live_view')
        assert g.alive()['live_view'] and 'Traceback' not in g.log('live_view')
    finally:
        if client is not None:
            client.close()
        g.stop()


def test_a_taken_port_is_one_fatal_line_and_exit_code_1(probe):
    import foxglove
    port = free_port()
    taken = foxglove.start_server(host='127.0.0.1', port=port)
    g = Graph('sim.launch.py', {'live_view': 'true', 'live_view_port': str(port)},
              domain_id=int(probe.context.get_domain_id()), only=['live_view']).start()
    try:
        assert g.procs['live_view'].wait(30) == 1
        log = g.log('live_view')
        assert f'live view: no Foxglove server on 127.0.0.1:{port}' in log and 'in use' in log
        assert 'Traceback' not in log
    finally:
        g.stop()
        taken.stop()
