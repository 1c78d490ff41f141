"""The runner and the nodes' start and stop, as an operator meets them (issue 16, item 5).

* a bad launch value leaves no node running and is one clean error;
* ``--trials`` waits for a controller that is slow to load;
* Ctrl-C of collect_sim.launch.py (SIGINT from the terminal and from the launcher at once):
  every node exits 0, no traceback;
* a node whose clean-up hangs after Ctrl-C still exits.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip('rclpy')

from reach_bringup.graph import Graph  # noqa: E402
from reach_bringup.probe import Probe, pick_domain_id  # noqa: E402


def _processes_in_domain(domain: int) -> list[str]:
    """Command lines of the processes (other than this one) running with ROS_DOMAIN_ID=domain."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f'/proc/{pid}/environ', 'rb') as f:
                env = f.read().split(b'\0')
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if f'ROS_DOMAIN_ID={domain}'.encode() in env and 'reach_ros' in cmd:
            found.append(cmd)
    return found


def test_a_bad_launch_value_is_a_clean_error_and_leaves_no_node_running():
    domain = pick_domain_id(41)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    r = subprocess.run([sys.executable, '-m', 'reach_bringup.run', 'sim.launch.py',
                        'camera_fps:=abc', '--launcher', 'graph', '--quiet'],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert 'camera_fps:=abc' in r.stderr and 'not a number' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr + r.stdout
    time.sleep(0.5)
    assert _processes_in_domain(domain) == []


def test_graph_start_builds_every_command_before_starting_a_node():
    g = Graph('sim.launch.py', {'camera_fps': 'abc'}, domain_id=pick_domain_id(42))
    with pytest.raises(ValueError, match='camera_fps'):
        g.start()
    assert g.procs == {}


class _SlowController:
    """A stand-in graph: joint states and scene configurations at once, the controller's
    start_trial service only after ``delay`` seconds (a controller loading on a busy machine);
    a started trial succeeds at once."""

    def __init__(self, domain: int, delay: float):
        from geometry_msgs.msg import PointStamped
        from reach_interfaces.msg import SceneConfig, TrialStatus
        from sensor_msgs.msg import JointState
        from reach_ros.common import COMMAND_QOS, LATCHED_QOS, LEFT_ARM_JOINTS
        self.p = Probe(domain, 'slow_controller')
        self.TrialStatus, self.delay, self.target = TrialStatus, delay, (0.5, 0.2)
        states = self.p.publisher(JointState, '/robot/joint_states', COMMAND_QOS)
        scenes = self.p.publisher(SceneConfig, '/scene_config', COMMAND_QOS)
        self.status = self.p.publisher(TrialStatus, '/reach/status', LATCHED_QOS)
        self.p.record(PointStamped, '/reach/target', LATCHED_QOS, self._on_target)

        def tick():
            m = JointState()
            m.name = list(LEFT_ARM_JOINTS)
            m.position = [0.0, -0.5, 0.0, 1.0, 0.0, 0.5, 0.0]
            states.publish(m)
            s = SceneConfig()
            s.target_x, s.target_y = self.target
            scenes.publish(s)
        self.p.node.create_timer(0.05, tick)
        self.t0 = time.monotonic()
        self.service = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _on_target(self, msg):
        self.target = (msg.point.x, msg.point.y)

    def _spin(self):
        from std_srvs.srv import Trigger
        while not self.stop.is_set():
            if self.service is None and time.monotonic() - self.t0 > self.delay:
                self.service = self.p.node.create_service(Trigger, '/controller/start_trial',
                                                          self._start)
            self.p.executor.spin_once(timeout_sec=0.05)

    def _start(self, request, response):
        out = self.TrialStatus()
        out.trial, out.state, out.steps, out.distance_m = 1, self.TrialStatus.SUCCEEDED, 3, 0.01
        self.status.publish(out)
        response.success, response.message = True, 'trial 1 started'
        return response

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.p.close()


def test_trials_wait_for_a_controller_slower_than_ten_seconds():
    from reach_bringup.trials import run_trials
    domain = pick_domain_id(43)
    slow = _SlowController(domain, delay=11.0)
    probe = Probe(domain, 'trial_runner')
    try:
        results = run_trials(probe, 1, dof=1, trial_timeout=10.0, startup_timeout=40.0)
        assert len(results) == 1 and results[0].succeeded
        assert time.monotonic() - slow.t0 >= 11.0
    finally:
        probe.close()
        slow.close()


def test_ctrl_c_on_the_collection_graph_stops_every_node_with_exit_0(tmp_path):
    """The terminal's Ctrl-C and the launcher's SIGINT reach each node at once: a second SIGINT
    during clean-up must not kill a node (exit -2) nor make collect_images report an error."""
    g = Graph('collect_sim.launch.py', {'out_dir': str(tmp_path / 'frames')},
              domain_id=pick_domain_id(44)).start()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and 'commanding the left arm' not in g.log('baxter_bridge'):
            time.sleep(0.2)
        assert all(g.alive().values()), g.logs()
    finally:
        for p in g.procs.values():
            p.send_signal(signal.SIGINT)
        time.sleep(0.05)
        codes = g.stop(timeout=15)
    assert codes == {n: 0 for n in g.procs}, (codes, g.logs()[-4000:])
    assert 'Traceback' not in g.logs()


_HANGING_CLEANUP = """
import sys, time
from rclpy.node import Node
from reach_ros.common import spin

class Stuck(Node):
    def __init__(self):
        super().__init__('stuck')
        print('up', flush=True)

    def destroy_node(self):
        time.sleep(120)            # a clean-up that never ends (a stuck DDS or driver thread)

sys.exit(spin(Stuck))
"""


def test_a_node_whose_clean_up_hangs_still_exits_after_ctrl_c():
    env = dict(os.environ, ROS_DOMAIN_ID=str(pick_domain_id(45)))
    p = subprocess.Popen([sys.executable, '-c', _HANGING_CLEANUP], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == 'up'
        p.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        p.wait(20)
        assert p.returncode == 0
        assert time.monotonic() - t0 < 10
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
