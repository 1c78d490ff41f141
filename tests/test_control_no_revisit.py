"""Tests of the no-revisit rule (control.py's NoRevisit): it breaks the greedy policy's loops,
with odometry, measurement noise, resets and batches, and on the shipped 2-DoF network's failures."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from reach_core.control import ControlPolicy, NoRevisit
from reach_core.kinematics import JOINT_LIMITS
from reach_core.scene import normalise
from reach_core.simulator import ReachEnv, TaskConfig

from test_control_network import _biased_policy


class _LoopNet(torch.nn.Module):
    """Q-values that make the greedy policy loop on e1: +e1 is best while e1 is below a switch
    angle, -e1 above it (a 2-cycle around the switch); +s1 is second best everywhere."""

    def __init__(self, switch_q1: float):
        super().__init__()
        self.switch = float(normalise(np.zeros(2), np.array([0.0, switch_q1, 0.0]))[3])
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # for ControlPolicy.act's device lookup

    def forward(self, omega):
        below = (omega[..., 3] < self.switch).float()
        q = torch.zeros(*omega.shape[:-1], 9)
        q[..., 3] = 2 + 8 * below        # +e1: 10 below the switch, 2 above
        q[..., 4] = 10 - 8 * below       # -e1: 2 below, 10 above
        q[..., 0] = 5                    # +s1
        return q


def test_no_revisit_breaks_a_greedy_loop():
    """The greedy policy of _LoopNet dithers on e1 forever; NoRevisit takes it elsewhere."""
    task = TaskConfig(dof=3, max_steps=40)
    pol = ControlPolicy(_LoopNet(switch_q1=1.0), task, {})
    env = ReachEnv(3, task, seed=0, auto_reset=False)
    q0 = np.array([[-0.5, 0.9, 0.3], [-0.4, 1.05, 0.0], [0.2, 0.7, -0.3]])
    target = np.tile([0.3, -0.2], (3, 1))
    env.set_scenes(q0, target, q0)
    greedy_q = []
    for _ in range(24):
        env.step(pol.act(env.observe()))
        greedy_q.append(env.q.copy())
    # plain greedy: a 2-cycle (the same two configurations again and again, s1 never moves)
    np.testing.assert_allclose(greedy_q[-1], greedy_q[-3], atol=1e-9)
    np.testing.assert_allclose(greedy_q[-1][:, 0], q0[:, 0])
    ctrl = NoRevisit(pol)
    env.set_scenes(q0, target, q0)
    seen = [env.q.copy()]
    for _ in range(24):
        actions = ctrl(env.observe())
        env.step(actions)
        seen.append(env.q.copy())
    seen = np.stack(seen, axis=1)                                # (3, 25, 3)
    for i in range(3):  # never back at a configuration of the same trial
        gaps = np.abs(seen[i][:, None] - seen[i][None]).max(-1) + np.eye(len(seen[i])) * 9
        assert gaps.min() > task.step / 2, i
    assert np.all(seen[:, -1, 0] > q0[:, 0] + 3 * task.step)     # it went on with +s1
    assert ctrl.visited.shape == (3, 24, 3)
    np.testing.assert_allclose(ctrl.visited, seen[:, :24], atol=1e-5)


def test_no_revisit_odometry_breaks_loops_that_jittery_estimates_hide():
    """Estimated angles that jitter by more than half a step hide the loop from the rule; the
    commanded configurations (first estimate + moves, odometry=True) do not."""
    task = TaskConfig(dof=3, max_steps=40)
    pol = ControlPolicy(_LoopNet(switch_q1=1.0), task, {})
    q0 = np.array([[-0.5, 0.9, 0.3], [-0.4, 1.05, 0.0], [0.2, 0.7, -0.3]])
    target = np.tile([0.3, -0.2], (3, 1))

    def run(ctrl, seed=0):
        rng = np.random.default_rng(seed)
        env = ReachEnv(3, task, seed=0, auto_reset=False)
        env.set_scenes(q0, target, q0)
        path = [env.q.copy()]
        for _ in range(24):
            t, q = env.target, env.q + rng.choice([-1, 1], size=env.q.shape) * 0.03  # > step / 2
            env.step(ctrl(normalise(t, q).astype(np.float32)))
            path.append(env.q.copy())
        return np.stack(path, axis=1)                                     # (3, 25, 3)

    def revisits(path):
        gaps = np.abs(path[:, :, None] - path[:, None]).max(-1) + np.eye(path.shape[1]) * 9
        return int((gaps < 1e-6).sum())

    assert revisits(run(NoRevisit(pol))) > 0                          # the jitter hides the loop
    odo = NoRevisit(pol, odometry=True)
    path = run(odo)
    assert revisits(path) == 0
    assert np.all(path[:, -1, 0] > q0[:, 0] + 3 * task.step)          # it went on with +s1
    odo.reset()
    assert odo.visited is None and odo._odo is None


def test_no_revisit_single_trial_reset_and_batch_size():
    pol = ControlPolicy(_LoopNet(switch_q1=1.0), TaskConfig(dof=3), {})
    ctrl = NoRevisit(pol)
    assert ctrl.tolerance == pytest.approx(0.02) and ctrl.visited is None
    target = np.array([0.3, -0.2])
    below, above = np.array([-0.5, 0.98, 0.3]), np.array([-0.5, 1.02, 0.3])
    a = ctrl(normalise(target, below))                           # one Omega (5,) -> one int
    assert isinstance(a, int) and a == 3                         # +e1
    assert ctrl(normalise(target, above)) == 0                   # -e1 would go back: +s1
    assert ctrl.visited.shape == (1, 2, 3)
    with pytest.raises(ValueError, match="reset"):
        ctrl(np.stack([normalise(target, below)] * 2))
    ctrl.reset()                                                 # a new trial: history gone
    assert ctrl.visited is None
    assert ctrl(normalise(target, above)) == 4                   # -e1 is allowed again
    assert ctrl(normalise(target, below)) == 0                   # but +e1 now goes back
    # the history grows past its initial capacity and stays exact
    ctrl.reset()
    qs = np.array([-1.5, 0.1, -1.0]) + np.arange(40)[:, None] * np.array([0.04, 0.0, 0.0])
    for q in qs:
        ctrl(normalise(target, q))
    np.testing.assert_allclose(ctrl.visited[0], qs, atol=1e-5)


def test_no_revisit_never_forbids_unchanged_and_falls_back_when_boxed_in():
    # "unchanged" is preferred: it is taken again and again, never counted as a revisit
    pol = _biased_policy([0.0, 0, 9, 0, 0, 0, 0, 0, 0])
    ctrl = NoRevisit(pol)
    om = normalise(np.array([0.3, -0.2]), np.array([-0.5, 1.0, 0.3]))
    assert [ctrl(om) for _ in range(5)] == [2] * 5
    # 1-DoF with "unchanged" only at the target: both e1 neighbours visited -> plain greedy
    pol1 = _biased_policy([0.0, 0, 0, 5, 4, 9, 0, 0, 0], dof=1, hold_only_at_target=True)
    ctrl = NoRevisit(pol1)
    target, q = np.array([0.9, 0.9]), np.array([0.0, 1.0, 0.0])  # far from the target
    step = np.array([0.0, 0.04, 0.0])
    assert ctrl(normalise(target, q + step)) == 3
    assert ctrl(normalise(target, q - step)) == 3
    assert ctrl(normalise(target, q)) == 3                       # boxed in: greedy +e1 anyway
    forbid = ctrl.visit(normalise(target, q)[None])
    assert forbid[0, [3, 4]].all() and not forbid[0, [2, 5, 8]].any()
    # next configurations are clipped to the joint limits: 0.015 rad below e1's upper limit,
    # +e1 ends 0.015 rad away (at the limit), i.e. where the arm is: a revisit
    ctrl.reset()
    forbid = ctrl.visit(normalise(target, np.array([0.0, JOINT_LIMITS[1, 1] - 0.015, 0.0]))[None])
    assert forbid[0, 3] and not forbid[0, [0, 1, 4, 6, 7]].any()


def test_no_revisit_tolerates_measurement_noise():
    """Measured angles: a configuration seen again is recognised within half a step of noise,
    and one step away is not mistaken for it."""
    pol = ControlPolicy(_LoopNet(switch_q1=1.0), TaskConfig(dof=3), {})
    rng = np.random.default_rng(3)
    target = np.array([0.3, -0.2])
    below, above = np.array([-0.5, 0.98, 0.3]), np.array([-0.5, 1.02, 0.3])

    def noise():
        return rng.uniform(-0.009, 0.009, 3)                    # |noise| < tolerance / 2

    for _ in range(20):
        ctrl = NoRevisit(pol)
        assert ctrl(normalise(target, below + noise())) == 3
        assert ctrl(normalise(target, above + noise())) == 0     # back to `below`: recognised
    # exact matching (tolerance 0) is fooled by the noise and dithers
    ctrl = NoRevisit(pol, tolerance=0.0)
    ctrl(normalise(target, below + 0.005))
    assert ctrl(normalise(target, above - 0.003)) == 4
    # the tolerance is what tells "seen again" from "new": 0.03 rad from a visited configuration
    # is new with the default (half a step), a revisit with 0.035
    visited = np.array([-0.5, 1.05, 0.3])                        # +e1 from `below` lands 0.03 off
    for tol, expected in ((None, 3), (0.035, 0)):
        ctrl = NoRevisit(pol, tolerance=tol)
        ctrl(normalise(target, visited))
        assert ctrl(normalise(target, below)) == expected, tol
    assert NoRevisit(pol).tolerance == pytest.approx(TaskConfig().step / 2)
    for bad in (-1.0, 0.04, 0.1):  # a tolerance of a step or more would forbid every move
        with pytest.raises(ValueError, match="tolerance"):
            NoRevisit(pol, tolerance=bad)


def test_no_revisit_rescues_the_shipped_2dof_networks_failures():
    """The trials of the 400-trial benchmark (seed 2017) that the shipped 2-DoF network fails with
    plain greedy (it loops): NoRevisit reaches the target in nearly all of them, and keeps the
    successes of a few trials greedy gets right."""
    path = os.path.join(os.path.dirname(__file__), "..", "src", "reach_core", "reach_core", "models",
                        "control_dof2.pt")
    pol = ControlPolicy.load(path)
    bench = ReachEnv(400, pol.task, seed=2017, auto_reset=False)  # the scenes of run_trials
    failing, fine = [31, 37, 43, 59, 89, 177, 234, 272, 372], [0, 1, 2, 3]
    idx = np.array(failing + fine)

    def run(policy):
        env = ReachEnv(len(idx), pol.task, seed=0, auto_reset=False)
        env.set_scenes(bench.q[idx], bench.target[idx], bench.q_star[idx])
        active, success = np.ones(len(idx), dtype=bool), np.zeros(len(idx), dtype=bool)
        while active.any():
            res = env.step(np.asarray(policy(env.observe())))
            success[active] = res.terminated[active]
            active &= ~(res.terminated | res.truncated)
        return success

    greedy, rule = run(pol.act), run(NoRevisit(pol))
    assert not greedy[:len(failing)].any() and greedy[len(failing):].all()
    assert rule[:len(failing)].sum() >= len(failing) - 1 and rule[len(failing):].all()
