"""Reaching trials through a running reach graph, as an operator would run them.

For each trial: pick a random target (Algorithm 1: the end-effector of a random configuration;
with a 1-DoF controller only e1 differs from the arm's present configuration), publish it on
/reach/target, wait until /scene_config carries it, call /controller/start_trial and wait for
/reach/status to say SUCCEEDED or FAILED. Used by tests/test_ros_graph.py and
bench/bench_ros_graph.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from baxter_core_msgs.msg import JointCommand
from geometry_msgs.msg import PointStamped
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from reach_interfaces.msg import SceneConfig, TrialStatus
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from reach_ros.common import ACTIVE_JOINTS, JOINT_LIMITS, LATCHED_QOS

TERMINAL = (TrialStatus.SUCCEEDED, TrialStatus.FAILED)


@dataclass
class TrialResult:
    trial: int
    q0: np.ndarray
    target: np.ndarray
    succeeded: bool
    steps: int
    distance_m: float
    seconds: float


#: what the probe records: reliable with a deep history, so that no message is dropped while the
#: probe is not spinning (e.g. waiting for a service); the messages are then taken late, in order
RECORD_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                        history=HistoryPolicy.KEEP_LAST)


def watch(probe) -> None:
    """Subscribe ``probe`` to what the trials need (idempotent)."""
    if hasattr(probe, 'scene'):
        return
    probe.scene = probe.record(SceneConfig, '/scene_config', RECORD_QOS)
    probe.states = probe.record(JointState, '/robot/joint_states', RECORD_QOS)
    probe.commands = probe.record(JointCommand, '/robot/limb/left/joint_command', RECORD_QOS)
    probe.status = probe.record(TrialStatus, '/reach/status', LATCHED_QOS)
    probe.target_pub = probe.publisher(PointStamped, '/reach/target', LATCHED_QOS)


TARGET_TOLERANCE_M = 0.1  # a scene configuration within this of a new target has taken it


def current_q(probe) -> np.ndarray:
    m = probe.states[-1][1]
    return np.array([m.position[m.name.index(n)] for n in ACTIVE_JOINTS])


def run_trials(probe, n: int, dof: int = 3, seed: int = 2017, trial_timeout: float = 45.0,
               startup_timeout: float = 60.0, tool=None):
    """Run ``n`` trials; return a list of TrialResult (raises TimeoutError if the graph stalls).
    Targets are tool points (of ``tool``, the graph's; None: the paper's) of random configurations.

    The graph may still be starting: joint states, scene configurations and the controller's
    start_trial service are waited for up to ``startup_timeout`` seconds (a controller loading
    torch on a busy machine takes longer than a fixed 10 s)."""
    watch(probe)
    end = time.monotonic() + startup_timeout
    if not probe.spin_until(lambda: probe.states and probe.scene, startup_timeout):
        raise TimeoutError('no joint states or scene configurations from the graph')
    if not probe.wait_for_service(Trigger, '/controller/start_trial',
                                  max(1.0, end - time.monotonic())):
        raise TimeoutError(f'/controller/start_trial not available after {startup_timeout:g} s')
    rng = np.random.default_rng(seed)
    lo = np.array([JOINT_LIMITS[j][0] for j in ACTIVE_JOINTS])
    hi = np.array([JOINT_LIMITS[j][1] for j in ACTIVE_JOINTS])
    from reach_core.kinematics import tool_arm
    arm = tool_arm(tool)
    results = []
    for _ in range(n):
        q = current_q(probe)
        q_star = rng.uniform(lo, hi)
        if dof == 1:
            q_star = np.array([q[0], q_star[1], q[2]])
        elif dof == 2:
            q_star = np.array([q[0], q_star[1], q_star[2]])
        if not arm.inside_box(q_star):   # a long tool: targets stay in the Omega square
            active = np.array({1: (0, 1, 0), 2: (0, 1, 1)}.get(dof, (1, 1, 1)), dtype=bool)
            q_star = arm.keep_in_box(q_star[None], lambda rows: np.where(
                active, rng.uniform(lo, hi), q)[None])[0]
        target = arm.forward(q_star)
        msg = PointStamped()
        msg.header.frame_id = 'left_arm_plane'
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        msg.point.x, msg.point.y = float(target[0]), float(target[1])
        probe.target_pub.publish(msg)
        n0 = len(probe.scene)
        # ground-truth perception passes the target through; a perception network estimates it
        # from the image with the virtual target painted in (centimetres off)
        if not probe.spin_until(lambda: any(
                np.hypot(m.target_x - target[0], m.target_y - target[1]) < TARGET_TOLERANCE_M
                for _, m in probe.scene[n0:]), 5.0):
            raise TimeoutError('perception did not take the new target from /reach/target')
        t0 = time.monotonic()
        reply = probe.call(Trigger, '/controller/start_trial')
        if not reply.success:
            raise RuntimeError(f'start_trial failed: {reply.message}')
        trial = int(reply.message.split()[1])
        q0 = current_q(probe)

        def finished():
            return any(m.trial == trial and m.state in TERMINAL for _, m in probe.status)
        if not probe.spin_until(finished, trial_timeout):
            raise TimeoutError(f'trial {trial} did not finish in {trial_timeout} s')
        final = next(m for _, m in reversed(probe.status)
                     if m.trial == trial and m.state in TERMINAL)
        results.append(TrialResult(trial, q0, target, final.state == TrialStatus.SUCCEEDED,
                                   int(final.steps), float(final.distance_m),
                                   time.monotonic() - t0))
    return results
