"""controller: /scene_config -> one joint step per scene configuration (the control Q-network).

Subscribes to ``scene_config`` (reach_interfaces/SceneConfig), runs the control module
(:class:`reach_core.control.ControlPolicy`, greedy over the actions its task allows; per message in
numpy, :class:`reach_core.control_numpy.NumpyPolicy`, the same actions without torch's per-operation
overhead) and publishes
the chosen joint deltas on ``joint_delta`` (/reach/joint_delta) as ``sensor_msgs/JointState``:
``name`` = [left_s1, left_e1, left_w1], ``position`` = the change of each joint in radians, exactly
+step, -step or 0 (step = 0.04 rad, from the checkpoint's task), ``header.stamp`` = the source
image's stamp. One message per scene configuration handled while a trial runs or holds.
With ``no_revisit`` (default) a step that would lead back to a joint configuration the trial has
already visited (within half a step; with ``no_revisit_odometry``, the default, the visited
configurations are the trial's first estimate plus the steps it commanded) is not taken: the
greedy policy's loops are approximation error of its Q-values, see
:class:`reach_core.control.NoRevisit`.

Trials: the paper's success test, the end-effector (forward kinematics of the estimated joint
angles to the tool point of ``tool``, which must be the control model's) within
``success_threshold_m`` of the estimated target for ``success_steps`` consecutive
scene configurations, ends a trial; so does ``max_steps`` actions without success. The controller
then holds: it keeps publishing zero deltas (so the bridge keeps the arm where it is) until
``~/start_trial`` (std_srvs/Trigger) starts the next trial, or ``~/stop`` stops. Scene
configurations whose image is older than the trial's start are not used for it. The state is
published on ``status`` (/reach/status, reach_interfaces/TrialStatus, latched) and logged.

Bad input (non-finite or out-of-range values, stale, out-of-order or future scene configurations:
more than ``max_clock_skew_s`` ahead of this node's clock) is skipped with a logged error, so one
future-stamped message never stalls the controller; a missing or broken checkpoint is one fatal error at start-up.
"""
from __future__ import annotations

import os

import numpy as np
from rclpy.node import Node
from reach_interfaces.msg import SceneConfig, TrialStatus
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from .common import (report, ACTIVE_JOINTS, COMMAND_QOS, LATCHED_QOS, FatalNodeError, Param, age_s,
                     declare_params, in_range, non_negative, on_set_parameters, positive, spin,
                     stamp_ns, tool_param)

PARAMS = [
    Param('model_path', '', 'control checkpoint (.pt) or a combined end-to-end checkpoint (its '
          'control half); empty: the shipped 3-DoF controller control_dof3.pt of reach_core',
          read_only=True),
    tool_param(),
    Param('success_threshold_m', 0.05, 'success distance (m) of the tool point to the target '
          '(the paper\'s delta)', positive),
    Param('success_steps', 4, 'consecutive steps within the threshold that make a success',
          positive),
    Param('max_steps', 300, 'actions per trial before it counts as failed', positive),
    Param('max_scene_age_s', 0.5, 'skip scene configurations whose image is older than this (s)',
          positive),
    Param('max_clock_skew_s', 0.1, 'refuse scene configurations stamped more than this far (s) '
          'in the future (a clock ahead of this one): one such message must not stall the '
          'controller until its stamp is reached', in_range(0.0, 1.0)),
    Param('omega_tolerance', 0.02, 'normalised values this far outside [0, 1] are clipped; '
          'farther ones are refused', non_negative),
    Param('autostart', True, 'start the first trial with the first scene configuration'),
    Param('no_revisit', True, 'never step to a joint configuration the trial has already visited '
          '(within half a step, for noisy measured angles): breaks the loops a greedy Q-policy can '
          'otherwise settle into (reach_core.control.NoRevisit)'),
    Param('no_revisit_odometry', True, 'the no-revisit rule tracks the configurations the trial '
          'commanded (its first estimate plus every step sent) instead of the estimated ones, '
          'whose frame-to-frame jitter from a perception network hides loops', read_only=True),
    Param('threads', 1, 'torch threads', in_range(1, 256), read_only=True),
]

TOPICS = {
    'scene_config': ('sub', 'reach_interfaces/msg/SceneConfig'),
    'joint_delta': ('pub', 'sensor_msgs/msg/JointState'),
    'status': ('pub', 'reach_interfaces/msg/TrialStatus'),
}
SERVICES = {
    '~/start_trial': 'std_srvs/srv/Trigger',
    '~/stop': 'std_srvs/srv/Trigger',
}

STATE_NAMES = {TrialStatus.IDLE: 'IDLE', TrialStatus.RUNNING: 'RUNNING',
               TrialStatus.SUCCEEDED: 'SUCCEEDED', TrialStatus.FAILED: 'FAILED',
               TrialStatus.STOPPED: 'STOPPED'}


def shipped_model_path(name: str = 'control_dof3.pt') -> str:
    """reach_core's shipped checkpoint: share/reach_core/models/NAME, else the package data."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(os.path.join(get_package_share_directory('reach_core'), 'models', name))
    except Exception:  # noqa: BLE001 - not on an ament prefix: use the package data
        pass
    import reach_core
    candidates.append(os.path.join(os.path.dirname(reach_core.__file__), 'models', name))
    for path in candidates:
        if os.path.isfile(path):
            return path
    return candidates[-1]


class Trial:
    """The trial bookkeeping of the controller, free of ROS (tests drive it directly).

    ``no_revisit`` (a :class:`reach_core.control.NoRevisit`, optional) is the trial's record of
    visited joint configurations, fed with the estimated Omega (and, with odometry, the commanded
    steps); :meth:`start` resets it.
    """

    def __init__(self, threshold: float, success_steps: int, max_steps: int, no_revisit=None):
        self.threshold, self.success_steps, self.max_steps = threshold, success_steps, max_steps
        self.no_revisit = no_revisit
        self.number = 0
        self.state = TrialStatus.IDLE
        self.steps = 0
        self.within = 0
        self.start_ns = 0
        self.distance = float('nan')
        self.message = ''

    def start(self, now_ns: int):
        self.number += 1
        self.state = TrialStatus.RUNNING
        self.steps = self.within = 0
        if self.no_revisit is not None:
            self.no_revisit.reset()
        self.start_ns = now_ns
        self.distance = float('nan')
        self.message = f'trial {self.number} started'

    def observe(self, distance: float) -> bool:
        """Count a scene configuration of the running trial; True while it should act."""
        self.distance = distance
        self.within = self.within + 1 if distance <= self.threshold else 0
        if self.within >= self.success_steps:
            self.state = TrialStatus.SUCCEEDED
            self.message = (f'trial {self.number} SUCCEEDED after {self.steps} steps: '
                            f'{distance * 100:.1f} cm from the target for {self.within} steps')
            return False
        if self.steps >= self.max_steps:
            self.state = TrialStatus.FAILED
            self.message = (f'trial {self.number} FAILED: {self.steps} steps without success '
                            f'({distance * 100:.1f} cm from the target)')
            return False
        return True


class Controller(Node):
    def __init__(self):
        super().__init__('controller')
        self.p = declare_params(self, PARAMS)
        on_set_parameters(self, PARAMS, self.p.update)
        import torch
        torch.set_num_threads(int(self.p['threads']))
        from reach_core import scene
        from reach_core.control import CheckpointError, NoRevisit, load_control
        from reach_core.kinematics import ToolError, check_tool, tool_arm
        from reach_core.simulator import action_deltas
        path = self.p['model_path'].strip() or shipped_model_path()
        try:
            # a control checkpoint, or the control half of a combined end-to-end checkpoint
            self.policy = load_control(os.path.expanduser(path))
            tool = check_tool(self.p['tool'], self.policy.task.tool, f'control model {path}')
        except (CheckpointError, ToolError) as err:
            raise FatalNodeError(f'cannot load the controller: {err}') from None
        self.scene, self.arm = scene, tool_arm(tool)   # the success test's tool point
        from reach_core.control_numpy import NumpyPolicy
        self.fast_policy = NumpyPolicy(self.policy)   # the same greedy actions, without torch's overhead
        task = self.policy.task
        self.deltas = action_deltas(task.step)
        self.step = task.step
        # the running trial's visited configurations
        self.revisits = NoRevisit(self.policy, odometry=self.p['no_revisit_odometry'])
        self.trial = Trial(self.p['success_threshold_m'], int(self.p['success_steps']),
                           int(self.p['max_steps']), self.revisits)
        self.last_stamp = 0
        self.delta_pub = self.create_publisher(JointState, 'joint_delta', COMMAND_QOS)
        self.status_pub = self.create_publisher(TrialStatus, 'status', LATCHED_QOS)
        self.create_subscription(SceneConfig, 'scene_config', self.on_scene, COMMAND_QOS)
        self.create_service(Trigger, '~/start_trial', self.on_start)
        self.create_service(Trigger, '~/stop', self.on_stop)
        self.get_logger().info(
            f'controller {path}: {task.dof}-DoF, step {task.step:g} rad, success: the tool point '
            f'({tool.describe()} from w1) within '
            f"{self.p['success_threshold_m'] * 100:g} cm for {self.p['success_steps']} steps, "
            f"at most {self.p['max_steps']} steps")
        self.publish_status(None)

    # ------------------------------------------------------------------------------- services
    def on_start(self, request, response):
        if self.trial is None:
            self.trial = Trial(self.p['success_threshold_m'], int(self.p['success_steps']),
                               int(self.p['max_steps']), self.revisits)
        self.trial.threshold = self.p['success_threshold_m']
        self.trial.success_steps = int(self.p['success_steps'])
        self.trial.max_steps = int(self.p['max_steps'])
        self.trial.start(self.get_clock().now().nanoseconds)
        self.get_logger().info(self.trial.message)
        self.publish_status(None)
        response.success, response.message = True, self.trial.message
        return response

    def on_stop(self, request, response):
        was = STATE_NAMES[self.trial.state]
        self.trial.state = TrialStatus.STOPPED
        self.trial.message = f'trial {self.trial.number} stopped (was {was}); holding'
        self.get_logger().info(self.trial.message)
        self.publish_status(None)
        response.success, response.message = True, self.trial.message
        return response

    # ------------------------------------------------------------------------------- scenes
    def on_scene(self, msg: SceneConfig):
        log = self.get_logger()
        target = np.array([msg.target_x, msg.target_y], dtype=np.float64)
        q = np.array([msg.left_s1, msg.left_e1, msg.left_w1], dtype=np.float64)
        if not (np.all(np.isfinite(target)) and np.all(np.isfinite(q))):
            report(self, 'controller1', 'scene configuration refused: NaN or infinite values', 'error', 2.0)
            return
        omega = self.scene.normalise(target, q).astype(np.float64)
        tol = self.p['omega_tolerance']
        if np.any((omega < -tol) | (omega > 1 + tol)):
            bad = [n for n, o in zip(self.scene.OMEGA_NAMES, omega) if not -tol <= o <= 1 + tol]
            report(self, 'range:' + ','.join(bad), f'scene configuration refused: {", ".join(bad)} out of range '
                      f'(target ({target[0]:.3f}, {target[1]:.3f}) m, q {np.round(q, 3).tolist()})', 'error', 2.0)
            return
        omega = np.clip(omega, 0.0, 1.0)
        stamp = stamp_ns(msg.header.stamp)
        age = age_s(self, msg.header.stamp)
        if age > self.p['max_scene_age_s']:
            report(self, 'controller3', f'scene configuration refused: stale ({age:.3f} s old)', 'error', 2.0)
            return
        if age < -self.p['max_clock_skew_s']:
            report(self, 'controller_future', f'scene configuration refused: stamped {-age:.3f} s '
                   f"in the future (max_clock_skew_s {self.p['max_clock_skew_s']:g})", 'error', 2.0)
            return
        if stamp <= self.last_stamp:
            report(self, 'controller4', 'scene configuration refused: not newer than the previous one', 'warn', 2.0)
            return
        self.last_stamp = stamp
        trial = self.trial
        if trial.state == TrialStatus.IDLE:
            if not self.p['autostart']:
                return
            trial.start(stamp)
            log.info(trial.message)
        elif trial.state == TrialStatus.RUNNING and stamp < trial.start_ns:
            return  # an image from before the trial started
        if trial.state != TrialStatus.RUNNING:
            self.publish_delta(msg, np.zeros(3))  # hold
            return
        ee = self.arm.forward(q)
        acting = trial.observe(float(np.linalg.norm(ee - target)))
        if not acting:
            log.info(trial.message)
            self.publish_delta(msg, np.zeros(3))
            self.publish_status(msg)
            return
        # the trial's visited configurations are recorded whether or not the rule is on, so
        # switching no_revisit on mid-trial applies it to the whole trial
        forbid = trial.no_revisit.visit(omega[None])[0] if trial.no_revisit is not None else None
        action = int(self.fast_policy.act(omega.astype(np.float32),
                                          forbid=forbid if self.p['no_revisit'] else None))
        if trial.no_revisit is not None:
            trial.no_revisit.moved([action])   # the odometry of no_revisit_odometry
        trial.steps += 1
        self.publish_delta(msg, self.deltas[action])
        self.publish_status(msg)

    def publish_delta(self, scene: SceneConfig, delta: np.ndarray):
        out = JointState()
        out.header.stamp = scene.header.stamp
        out.header.frame_id = scene.header.frame_id
        out.name = list(ACTIVE_JOINTS)
        out.position = [float(d) for d in delta]
        self.delta_pub.publish(out)

    def publish_status(self, scene: SceneConfig | None):
        t = self.trial
        out = TrialStatus()
        if scene is not None:
            out.header.stamp = scene.header.stamp
            out.header.frame_id = scene.header.frame_id
            out.target_x, out.target_y = scene.target_x, scene.target_y
        else:
            out.header.stamp = self.get_clock().now().to_msg()
        out.trial = t.number
        out.state = t.state
        out.state_name = STATE_NAMES[t.state]
        out.steps = t.steps
        out.within_count = t.within
        out.distance_m = float(t.distance)
        out.message = t.message
        self.status_pub.publish(out)


def main(args=None):
    return spin(Controller, args)


if __name__ == '__main__':
    raise SystemExit(main())
