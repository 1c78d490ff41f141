"""Tests of the control module (control.py), its training (control_training.py) and the
evaluation protocol (evaluation.py).  Training runs here are tiny (a few thousand steps, ~1 s)."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from reach_core.cli import main as cli_main
from reach_core.control import (CHECKPOINT_FORMAT, CheckpointError, ControlPolicy, NoRevisit,
                                QNetwork, available_actions, load_checkpoint, masked_argmax)
from reach_core.kinematics import BAXTER_LEFT, JOINT_LIMITS
from reach_core.scene import normalise
from reach_core.control_training import (Actor, InputCache, Learner, NStep, ReplayMemory, TrainConfig,
                                         train)
from reach_core.evaluation import EvalResult, format_table, run_trials
from reach_core.simulator import ReachEnv, TaskConfig, action_mask

PAPER_PARAMS = 5 * 400 + 400 + 400 * 300 + 300 + 300 * 9 + 9


def _omegas(n=256, seed=0):
    return np.random.default_rng(seed).random((n, 5)).astype(np.float32)


def _policy(dof=3, seed=0, **net):
    torch.manual_seed(seed)
    return ControlPolicy(QNetwork(**net), TaskConfig(dof=dof), {"exploration": "kgps", "seed": seed})


def _assert_clean(err: CheckpointError, *words):
    msg = str(err)
    for w in words:
        assert w in msg, msg
    assert "Traceback" not in msg and "\n" not in msg, msg
    # no chained torch/pickle exception would be printed with it
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


# --- QNetwork -------------------------------------------------------------------------------------

def test_qnetwork_paper_architecture():
    net = QNetwork()
    out = net(torch.from_numpy(_omegas(7)))
    assert out.shape == (7, 9)
    assert net(torch.zeros(5)).shape == (9,)
    assert sum(p.numel() for p in net.parameters()) == PAPER_PARAMS == 125409
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 400), (400, 300), (300, 9)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 2


@pytest.mark.parametrize("kw", [{"dueling": True}, {"encoding": 4}, {"dueling": True, "encoding": 2},
                                {"hidden": (64,)}, {"hidden": (32, 32, 32)}])
def test_qnetwork_variants_output_nine(kw):
    net = QNetwork(**kw)
    assert net(torch.from_numpy(_omegas(3))).shape == (3, 9)
    if kw.get("encoding"):
        assert net.encode(torch.zeros(2, 5)).shape == (2, 5 * (1 + 2 * kw["encoding"]))


def test_kinematic_features_match_forward_kinematics():
    rng = np.random.default_rng(3)
    q = BAXTER_LEFT.sample_joints(rng, 64)
    target = BAXTER_LEFT.forward(BAXTER_LEFT.sample_joints(rng, 64))
    omega = torch.from_numpy(normalise(target, q))
    net = QNetwork(kinematic=True)
    feats = net.kinematic_features(omega).double().numpy()
    assert feats.shape == (64, QNetwork.NUM_KINEMATIC)
    ee = BAXTER_LEFT.forward(q)
    np.testing.assert_allclose(feats[:, 0:2], ee, atol=1e-5)
    np.testing.assert_allclose(feats[:, 2:4], target - ee, atol=1e-5)
    np.testing.assert_allclose(feats[:, 6], np.tanh(np.linalg.norm(target - ee, axis=1) / 0.1), atol=1e-5)
    assert net(omega).shape == (64, 9) and net.encode(omega).shape == (64, 5 + QNetwork.NUM_KINEMATIC)
    # gradients reach Omega through the features (end-to-end fine-tuning needs them)
    omega.requires_grad_(True)
    net(omega).sum().backward()
    assert omega.grad is not None and torch.all(torch.isfinite(omega.grad)) and omega.grad.abs().sum() > 0


def test_available_actions_block_moves_into_joint_limits():
    q = np.array([JOINT_LIMITS[0, 1], JOINT_LIMITS[1, 0], 0.3])  # s1 at its upper, e1 at its lower limit
    omega = torch.from_numpy(normalise(np.zeros((1, 2)), q[None]))
    avail = available_actions(omega, torch.as_tensor(action_mask(3)))[0].numpy()
    np.testing.assert_array_equal(avail, [0, 1, 1, 1, 0, 1, 1, 1, 1])
    avail1 = available_actions(omega, torch.as_tensor(action_mask(1)))[0].numpy()
    np.testing.assert_array_equal(avail1, [0, 0, 0, 1, 0, 1, 0, 0, 0])
    # the simulator applies the same rule to its own joint angles
    env = ReachEnv(1, TaskConfig(dof=3), seed=0)
    env.set_scenes(q, np.zeros(2), q)
    np.testing.assert_array_equal(env.available_actions()[0], avail)
    # a greedy policy never picks a blocked move, whatever its Q-values say
    pol = _policy(dof=3)
    with torch.no_grad():
        pol.net.head.bias.copy_(torch.tensor([100.0, 0, 0, 0, 100.0, 0, 0, 0, 0]))
        pol.net.head.weight.zero_()
    assert pol.act(omega.numpy()[0]) not in (0, 4)
    assert pol.act(_omegas(1)[0] * 0.5 + 0.25) in (0, 4)


def test_hold_only_at_target_allows_unchanged_only_near_the_target():
    rng = np.random.default_rng(5)
    q = BAXTER_LEFT.sample_joints(rng, 400, margin=0.1)
    ee = BAXTER_LEFT.forward(q)
    offsets = rng.normal(size=(400, 2))
    offsets *= (rng.uniform(0.0, 0.10, 400) / np.linalg.norm(offsets, axis=1))[:, None]
    target = ee + offsets
    keep = np.linalg.norm(target, axis=1) < 1.0  # inside the arm's reach (1.025 m)
    q, target, offsets = q[keep], target[keep], offsets[keep]
    near = np.linalg.norm(offsets, axis=1) <= 0.05
    assert 50 < near.sum() < len(near) - 50
    omega = torch.from_numpy(normalise(target, q))
    plain = available_actions(omega, torch.as_tensor(action_mask(3)))
    held = available_actions(omega, torch.as_tensor(action_mask(3)), hold_radius=0.05)
    assert plain[:, 2::3].all()
    np.testing.assert_array_equal(held[:, 2::3].numpy(), np.repeat(near[:, None], 3, axis=1))
    np.testing.assert_array_equal(held[:, [0, 1, 3, 4, 6, 7]].numpy(), plain[:, [0, 1, 3, 4, 6, 7]].numpy())
    # the simulator applies the same rule to K-GPS and random actions
    env = ReachEnv(len(q), TaskConfig(dof=3, hold_only_at_target=True), seed=0)
    env.set_scenes(q, target, q)
    np.testing.assert_array_equal(env.available_actions(), held.numpy())
    assert not np.isin(env.random_actions()[~near], (2, 5, 8)).any()
    # a policy whose Q-values prefer "unchanged" everywhere still moves away from the target
    pol = ControlPolicy(QNetwork(hidden=(8,)), TaskConfig(dof=3, hold_only_at_target=True), {})
    with torch.no_grad():
        pol.net.head.weight.zero_()
        pol.net.head.bias.copy_(torch.tensor([0.0, 0, 10, 0, 0, 10, 0, 0, 10]))
    a = pol.act(omega.numpy())
    assert np.isin(a[near], (2, 5, 8)).all() and not np.isin(a[~near], (2, 5, 8)).any()
    assert TaskConfig(hold_only_at_target=True).hold_radius == 0.05 and TaskConfig().hold_radius == 0


def _biased_policy(bias, dof=3, hidden=(8,), hold_only_at_target=False):
    """A policy whose Q-values are the head biases plus (optionally) a weight on Omega, set by hand."""
    task = TaskConfig(dof=dof, hold_only_at_target=hold_only_at_target)
    pol = ControlPolicy(QNetwork(hidden=hidden), task, {})
    with torch.no_grad():
        pol.net.head.weight.zero_()
        pol.net.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return pol


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


def test_act_forbid_masks_batched_and_single_fall_back_to_greedy():
    pol = _biased_policy([5.0, 4, 0, 3, 0, 0, 0, 0, 0])
    om = _omegas(4) * 0.5 + 0.25  # inside the joint limits: every move available
    assert list(pol.act(om)) == [0] * 4
    forbid = np.zeros((4, 9), dtype=bool)
    forbid[1, 0] = True
    forbid[2, [0, 1]] = True
    assert list(pol.act(om, forbid=forbid)) == [0, 1, 3, 0]
    one = np.zeros(9, dtype=bool)
    one[0] = True
    assert pol.act(om[0], forbid=one) == 1                       # single scene, (9,) mask
    assert list(pol.act(om, forbid=one)) == [1] * 4              # (9,) mask for a batch
    # every action forbidden: that scene ignores the mask (plain greedy), the others do not
    forbid[3] = True
    assert list(pol.act(om, forbid=forbid)) == [0, 1, 3, 0]
    assert pol.act(om[0], forbid=np.ones(9, dtype=bool)) == 0
    # the fallback keeps the usual availability: 1-DoF, every e1 move forbidden -> e1 "unchanged"
    pol1 = _biased_policy([9.0, 8, 7, 1, 2, 3, 6, 5, 4], dof=1)
    assert pol1.act(om[0]) == 5
    f = np.zeros(9, dtype=bool)
    f[5] = True
    assert pol1.act(om[0], forbid=f) == 4                        # -e1, never an inactive joint
    f[3:6] = True
    assert pol1.act(om[0], forbid=f) == 5


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


def test_dueling_q_is_value_plus_centred_advantage():
    net = QNetwork(hidden=(16,), dueling=True)
    x = torch.from_numpy(_omegas(4))
    raw = net.head(net.trunk(x))
    v, a = raw[:, :1], raw[:, 1:]
    torch.testing.assert_close(net(x), v + a - a.mean(-1, keepdim=True))


def test_masked_argmax_ignores_masked_actions():
    q = torch.tensor([[9.0, 8, 7, 1, 2, 3, 6, 5, 4]])
    assert masked_argmax(q, torch.as_tensor(action_mask(3))).item() == 0
    assert masked_argmax(q, torch.as_tensor(action_mask(1))).item() == 5
    assert masked_argmax(q, torch.as_tensor(action_mask(2))).item() == 6


def test_policy_act_respects_dof_mask_and_shapes():
    pol = _policy(dof=1)
    a = pol.act(_omegas(500))
    assert a.shape == (500,) and set(np.unique(a)) <= {3, 4, 5}
    single = pol.act(_omegas(1)[0])
    assert np.ndim(single) == 0 and single == pol.act(_omegas(1))[0]


# --- checkpoints ----------------------------------------------------------------------------------

@pytest.mark.parametrize("net", [{}, {"hidden": (32, 16), "dueling": True, "encoding": 3},
                                 {"hidden": (32, 16), "dueling": True, "kinematic": True}])
def test_save_load_round_trip(tmp_path, net):
    pol = _policy(dof=2, **net)
    path = tmp_path / "sub" / "p.pt"
    pol.save(path, note="x")
    assert path.is_file() and not list(tmp_path.glob("sub/*.tmp*"))
    back = ControlPolicy.load(path)
    assert back.task == pol.task and back.meta == pol.meta
    assert back.net.hidden == pol.net.hidden and back.net.dueling == pol.net.dueling
    assert back.net.encoding == pol.net.encoding and back.net.kinematic == pol.net.kinematic
    sd0, sd1 = pol.net.state_dict(), back.net.state_dict()
    assert sd0.keys() == sd1.keys()
    for k in sd0:
        assert torch.equal(sd0[k], sd1[k]), k
    om = _omegas(1000, seed=1)
    np.testing.assert_array_equal(back.act(om), pol.act(om))
    assert load_checkpoint(path)["note"] == "x"
    assert ControlPolicy.load(str(path), dof=2).task.dof == 2


def test_load_missing_file(tmp_path):
    with pytest.raises(CheckpointError) as exc:
        ControlPolicy.load(tmp_path / "nope.pt")
    _assert_clean(exc.value, "checkpoint file not found", "nope.pt")


def test_load_empty_file(tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    with pytest.raises(CheckpointError) as exc:
        ControlPolicy.load(p)
    _assert_clean(exc.value, "empty", "empty.pt")


def test_load_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ControlPolicy.load(tmp_path)


def test_load_random_bytes(tmp_path):
    p = tmp_path / "corrupt.pt"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as exc:
        ControlPolicy.load(p)
    _assert_clean(exc.value, "cannot read checkpoint", "corrupt.pt")


def test_load_truncated_checkpoint(tmp_path):
    p = tmp_path / "cut.pt"
    _policy().save(p)
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(CheckpointError) as exc:
        ControlPolicy.load(p)
    _assert_clean(exc.value, "cannot read checkpoint")


@pytest.mark.parametrize("obj, found", [({"format": "other"}, "'other'"), ({"a": 1}, "None"),
                                        ([1, 2, 3], "'list'")])
def test_load_foreign_torch_file(tmp_path, obj, found):
    p = tmp_path / "other.pt"
    torch.save(obj, p)
    with pytest.raises(CheckpointError) as exc:
        ControlPolicy.load(p)
    _assert_clean(exc.value, "not a reach control checkpoint", found, CHECKPOINT_FORMAT)


def test_load_weights_of_another_architecture(tmp_path):
    ckpt = _policy().checkpoint()
    assert ckpt["arch"]["hidden"] == [400, 300]
    ckpt["model"] = QNetwork(hidden=(64, 64)).state_dict()
    p = tmp_path / "mismatch.pt"
    torch.save(ckpt, p)
    with pytest.raises(CheckpointError) as exc:
        ControlPolicy.load(p)
    _assert_clean(exc.value, "weights do not fit", "(400, 300)")


def test_load_dueling_weights_under_plain_header(tmp_path):
    ckpt = _policy(hidden=(32,), dueling=True).checkpoint()
    ckpt["arch"]["dueling"] = False
    p = tmp_path / "duel.pt"
    torch.save(ckpt, p)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        ControlPolicy.load(p)


def test_load_dof_mismatch(tmp_path):
    p = tmp_path / "three.pt"
    _policy(dof=3).save(p)
    with pytest.raises(CheckpointError) as exc:
        ControlPolicy.load(p, dof=2)
    _assert_clean(exc.value, "3-DoF", "2-DoF")


@pytest.mark.parametrize("edit", [
    lambda c: c.pop("arch"),
    lambda c: c.pop("task"),
    lambda c: c["task"].update(dof=7),
    lambda c: c["task"].update(bogus=1),
    lambda c: c["arch"].update(hidden=5),
    lambda c: c["arch"].update(in_dim=6),
])
def test_load_malformed_header(tmp_path, edit):
    ckpt = _policy().checkpoint()
    edit(ckpt)
    p = tmp_path / "bad.pt"
    torch.save(ckpt, p)
    with pytest.raises(CheckpointError) as exc:
        ControlPolicy.load(p)
    assert "bad.pt" in str(exc.value)


@pytest.mark.parametrize("model", ["pop", None])
def test_load_malformed_weights_entry(tmp_path, model):
    # the "model" entry missing or not a state dict: still a CheckpointError, not a bare torch error
    ckpt = _policy(hidden=(8,)).checkpoint()
    if model == "pop":
        ckpt.pop("model")
    else:
        ckpt["model"] = model
    p = tmp_path / "w.pt"
    torch.save(ckpt, p)
    with pytest.raises(CheckpointError):
        ControlPolicy.load(p)


# --- n-step returns -------------------------------------------------------------------------------

def _o(t, e):
    """A recognisable observation: trial step t of env e."""
    return np.full(5, 10 * t + e, np.float32)


def _push(ns, t, rewards, term=(False, False), trunc=(False, False)):
    obs = np.stack([_o(t, 0), _o(t, 1)])
    nxt = np.stack([_o(t + 1, 0), _o(t + 1, 1)]) + 0.5  # "after the step" marker
    return ns.push(obs, np.array([t, 100 + t]), np.array(rewards, float), nxt,
                   np.array(term), np.array(trunc), np.array([1.0, 0.0], np.float32))


def _rows(out):
    """Transitions as {first obs value: (action, G, next obs value, discount, guided)}."""
    if not out:
        return {}
    obs, act, g, nxt, disc, guided = out
    assert len({len(obs), len(act), len(g), len(nxt), len(disc), len(guided)}) == 1
    return {float(o[0]): (int(a), float(r), float(n[0]), float(d), float(gd))
            for o, a, r, n, d, gd in zip(obs, act, g, nxt, disc, guided)}


def _check(rows, expected):
    assert set(rows) == set(expected), (rows, expected)
    for k, (a, g, n, d, gd) in expected.items():
        ra, rg, rn, rd, rgd = rows[k]
        assert ra == a and rn == n and rgd == gd, (k, rows[k], expected[k])
        assert rg == pytest.approx(g, abs=1e-12) and rd == pytest.approx(d, abs=1e-12), (k, rows[k])


def test_nstep_returns_discounts_and_flushes():
    gam = 0.9
    ns = NStep(3, 2, gam)
    # t=0: nothing is complete yet
    assert _push(ns, 0, [1, 10]) == ()
    # t=1: env 1 succeeds -> both of its transitions leave with discount 0
    _check(_rows(_push(ns, 1, [2, 20], term=(False, True))), {
        1.0: (100, 10 + gam * 20, 21.5, 0.0, 0.0),
        11.0: (101, 20, 21.5, 0.0, 0.0),
    })
    # t=2: env 0 has 3 rewards for its first transition: G = 1 + .9*2 + .81*3, discount .9^3
    _check(_rows(_push(ns, 2, [3, 30])), {
        0.0: (0, 1 + gam * 2 + gam ** 2 * 3, 30.5, gam ** 3, 1.0),
    })
    # t=3: env 0 is truncated -> its 3 pending transitions bootstrap from Omega_4 with gamma^k
    _check(_rows(_push(ns, 3, [4, 40], trunc=(True, False))), {
        10.0: (1, 2 + gam * 3 + gam ** 2 * 4, 40.5, gam ** 3, 1.0),
        20.0: (2, 3 + gam * 4, 40.5, gam ** 2, 1.0),
        30.0: (3, 4, 40.5, gam, 1.0),
    })
    # t=4: env 1's new trial (started at t=2) completes its first 3-step transition
    _check(_rows(_push(ns, 4, [5, 50])), {
        21.0: (102, 30 + gam * 40 + gam ** 2 * 50, 51.5, gam ** 3, 0.0),
    })


def test_nstep_one_is_the_one_step_target():
    ns = NStep(1, 2, 0.99)
    _check(_rows(_push(ns, 0, [1, 2])), {0.0: (0, 1, 10.5, 0.99, 1.0), 1.0: (100, 2, 11.5, 0.99, 0.0)})
    _check(_rows(_push(ns, 1, [3, 4], term=(True, False), trunc=(False, True))),
           {10.0: (1, 3, 20.5, 0.0, 1.0), 11.0: (101, 4, 21.5, 0.99, 0.0)})


def test_replay_memory_wraps_around():
    m = ReplayMemory(5)
    for start in (0, 3):
        n = 3
        m.add(np.full((n, 5), start, np.float32) + np.arange(n)[:, None], np.arange(start, start + n),
              np.ones(n), np.zeros((n, 5)), np.full(n, 0.9), np.zeros(n))
    assert len(m) == 5 and m.full and m.pos == 1
    np.testing.assert_array_equal(m.action, [5, 1, 2, 3, 4])
    batch = m.sample(np.random.default_rng(0), 64)
    assert [t.shape[0] for t in batch] == [64] * 6
    assert set(batch[1].tolist()) <= {1, 2, 3, 4, 5}


def _filled_memory(cfg: TrainConfig, n: int = 600, seed: int = 0) -> ReplayMemory:
    """A memory with an input cache, holding ``n`` random transitions (some at the target, where
    "unchanged" is available, and some at joint limits)."""
    rng = np.random.default_rng(seed)
    m = ReplayMemory(n, InputCache.of(cfg, cfg.task()))
    obs, nxt = rng.random((n, 5)).astype(np.float32), rng.random((n, 5)).astype(np.float32)
    obs[::7, 2:] = 0.0
    nxt[::5, 2:] = 1.0
    env = ReachEnv(n // 3, cfg.task(), seed=seed)
    nxt[: n // 3] = normalise(env.arm.forward(env.q), env.q)   # the tool point at the target
    for start in range(0, n, 37):  # added in steps' worth of transitions, as the actor does
        sl = slice(start, min(n, start + 37))
        k = sl.stop - sl.start
        m.add(obs[sl], rng.integers(0, 9, k), rng.random(k), nxt[sl], np.full(k, 0.95), rng.random(k) < 0.5)
    return m


def test_replay_memory_caches_the_network_inputs_and_availabilities_of_each_transition():
    cfg = TrainConfig(dof=3, kinematic=True, dueling=True, hold_only_at_target=True)
    m = _filled_memory(cfg)
    net = QNetwork(cfg.hidden, cfg.dueling, kinematic=True, tool_length=cfg.task().arm.tool_length)
    mask, hold = torch.as_tensor(action_mask(3)), cfg.task().hold_radius
    for raw, inputs, avail in (("obs", "obs_in", "obs_avail"), ("next_obs", "next_in", "next_avail")):
        omega = torch.from_numpy(getattr(m, raw))
        with torch.no_grad():   # numpy's float32 arithmetic: torch's to rounding (the look-ahead
            # gains divide a difference of distances by the 0.05 rad step: a few 1e-6 m become 1e-5)
            torch.testing.assert_close(torch.from_numpy(getattr(m, inputs)), net.encode(omega),
                                       rtol=0, atol=5e-5)
        expected = available_actions(omega, mask, hold, net.tool_length)
        assert torch.equal(torch.from_numpy(getattr(m, avail) != 0), expected)
    assert 0 < (m.next_avail[:, 2::3] != 0).any(axis=1).sum() < len(m)   # "unchanged" at some targets only
    idx = np.random.default_rng(1).integers(0, len(m), 64)
    batch = m.sample(np.random.default_rng(1), 64)
    assert len(batch) == 10 and [t.shape[0] for t in batch] == [64] * 10
    for k, t in zip(ReplayMemory.FIELDS + ReplayMemory.CACHED, batch):   # one row per transition
        want = getattr(m, k)[idx]
        np.testing.assert_array_equal(t.numpy(), want != 0 if k.endswith("avail") else want, err_msg=k)
    # restored from the six stored fields (replay.npz), the cache is recomputed: the same values
    again = ReplayMemory(len(m), InputCache.of(cfg, cfg.task()))
    again.load_state(m.state())
    for k in ReplayMemory.CACHED:
        np.testing.assert_array_equal(getattr(again, k), getattr(m, k))


def _pre_cache_update(net, target, policy, optim, batch, cfg, mask, hold):
    """control_training's update before the input cache, the fused Adam and the foreach Polyak
    averages: every network encodes Omega itself, for-loop Adam, one lerp_ per tensor."""
    obs, action, ret, next_obs, discount, _ = batch[:6]
    next_mask = available_actions(next_obs, mask, hold, net.tool_length)
    with torch.no_grad():
        next_q = target(next_obs).masked_fill(~next_mask, float("-inf"))
        best = masked_argmax(net(next_obs), next_mask)
        y = ret + discount * next_q.gather(1, best[:, None]).squeeze(1)
    q = net(obs).gather(1, action[:, None]).squeeze(1)
    loss = torch.nn.functional.smooth_l1_loss(q, y)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    with torch.no_grad():
        for p, tp, pp in zip(net.parameters(), target.parameters(), policy.parameters()):
            tp.lerp_(p, cfg.target_tau)
            pp.lerp_(p, cfg.policy_ema)
    return loss.item()


def _torch_inputs(batch, net, mask, hold):
    """``batch`` with its cached inputs and availabilities computed by torch, as the update before
    the cache computed them (the cache's numpy values equal them to rounding: the test above)."""
    obs, next_obs = batch[0], batch[3]
    with torch.no_grad():
        return (*batch[:6], net.encode(obs), net.encode(next_obs),
                available_actions(obs, mask, hold, net.tool_length),
                available_actions(next_obs, mask, hold, net.tool_length))


def test_cached_fused_update_matches_the_update_before_it():
    cfg = TrainConfig(dof=3, kinematic=True, dueling=True, hold_only_at_target=True, policy_ema=0.01,
                      target_tau=0.05, batch_size=64)
    m = _filled_memory(cfg)
    torch.manual_seed(0)
    fast = Learner(cfg, torch.device("cpu"))
    assert fast.optim.defaults["fused"]
    nets = [QNetwork(cfg.hidden, cfg.dueling, kinematic=True, tool_length=fast.net.tool_length)
            for _ in range(3)]
    for n, src in zip(nets, (fast.net, fast.target, fast.policy)):
        n.load_state_dict(src.state_dict())
    optim = torch.optim.Adam(nets[0].parameters(), lr=cfg.lr, foreach=False)
    mask, hold, rng = torch.as_tensor(action_mask(3)), cfg.task().hold_radius, np.random.default_rng(2)
    for _ in range(30):
        batch = _torch_inputs(m.sample(rng, cfg.batch_size), fast.net, mask, hold)
        loss_fast = fast.update(batch, mask, hold)
        loss_old = _pre_cache_update(*nets, optim, batch, cfg, mask, hold)
        assert loss_fast == pytest.approx(loss_old, rel=1e-4)
    for new, old in zip((fast.net, fast.target, fast.policy), nets):
        for (k, a), b in zip(new.state_dict().items(), old.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=k)
    # and the weights did move: the comparison is not between two untouched networks
    assert not torch.allclose(fast.net.head.weight, fast.target.head.weight)
    # a batch without the cached fields takes the same update (the inputs computed on the fly)
    twins = []
    for _ in range(2):
        torch.manual_seed(1)
        twins.append(Learner(cfg, torch.device("cpu")))
    for seed in range(5):
        batch = _torch_inputs(m.sample(np.random.default_rng(seed), cfg.batch_size), twins[0].net, mask, hold)
        assert twins[0].update(batch, mask, hold) == pytest.approx(twins[1].update(batch[:6], mask, hold),
                                                                   rel=1e-5)
    for (k, a), b in zip(twins[0].net.state_dict().items(), twins[1].net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=k)


def test_the_actor_picks_the_greedy_actions_of_the_torch_policy():
    # Actor.greedy: cached (numpy) inputs and availabilities, torch network; ControlPolicy.act: all torch
    cfg = TrainConfig(dof=3, num_envs=500, kinematic=True, dueling=True, hold_only_at_target=True)
    task = cfg.task()
    actor = Actor(cfg, task, np.random.default_rng(0), torch.device("cpu"))
    torch.manual_seed(0)
    policy = ControlPolicy(QNetwork(cfg.hidden, True, kinematic=True, tool_length=task.arm.tool_length),
                           task, {})
    env = ReachEnv(500, task, seed=3)
    held = 0
    for obs in (env.observe(), normalise(env.arm.forward(env.q), env.q), _omegas(500, seed=4)):
        actor.obs = obs
        greedy = actor.greedy(policy.net)
        np.testing.assert_array_equal(greedy, policy.act(obs))
        held += int(np.isin(greedy, (2, 5, 8)).sum())
    assert held > 0   # some scenes at the target, where "unchanged" is available and chosen


# --- training -------------------------------------------------------------------------------------

TINY = dict(dof=1, total_steps=3000, num_envs=16, learning_starts=500, eval_every=1500,
            eval_trials=20, batch_size=64, threads=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiny")
    cfg = TrainConfig(**TINY)
    logs = []
    metrics = train(cfg, str(run_dir), progress=False, log=logs.append)
    return cfg, run_dir, metrics, logs


def test_train_config_validation():
    with pytest.raises(ValueError, match="exploration"):
        TrainConfig(exploration="random")
    with pytest.raises(ValueError, match="n_step"):
        TrainConfig(n_step=0)
    with pytest.raises(ValueError):
        TrainConfig(total_steps=8, num_envs=16)
    with pytest.raises(ValueError, match="random_fraction"):
        TrainConfig(random_fraction=1.5)
    with pytest.raises(ValueError, match="policy_ema"):
        TrainConfig(policy_ema=1.0)
    cfg = TrainConfig(total_steps=1000, eps_decay_fraction=0.5)
    assert cfg.epsilon(0) == 1.0 and cfg.epsilon(250) == pytest.approx(0.55)
    assert cfg.epsilon(500) == pytest.approx(0.1) and cfg.epsilon(1000) == pytest.approx(0.1)
    assert cfg.task() == TaskConfig(dof=3, max_steps=300)


def test_tiny_training_writes_run_files(tiny_run):
    cfg, run_dir, metrics, logs = tiny_run
    for name in ("model.pt", "best.pt", "checkpoint.pt", "replay.npz", "config.json",
                 "metrics.json", "learning_curve.png", "progress.csv"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    with open(run_dir / "learning_curve.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["steps"] == metrics["steps"]
    assert cfg.total_steps <= metrics["steps"] < cfg.total_steps + cfg.num_envs
    assert metrics["env_steps_per_s"] > 0 and metrics["updates_per_s"] > 0
    # updates: 0.125 per env step once the memory holds learning_starts transitions
    assert metrics["updates"] == pytest.approx(0.125 * (metrics["steps"] - 512), abs=2)
    hist = on_disk["history"]
    assert [h["step"] for h in hist] == [1504, 3008]
    assert all(0 <= h["success_rate"] <= 1 for h in hist)
    assert on_disk["final_success_rate"] == hist[-1]["success_rate"]
    assert on_disk["best_success_rate"] == max(h["success_rate"] for h in hist)
    assert json.loads((run_dir / "config.json").read_text()) == json.loads(json.dumps(asdict(cfg)))
    with open(run_dir / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1504, 3008]
    assert float(rows[-1]["success_rate"]) == pytest.approx(hist[-1]["success_rate"])
    assert any("done" in line for line in logs)


def test_tiny_training_models_load(tiny_run):
    cfg, run_dir, metrics, _ = tiny_run
    model = ControlPolicy.load(run_dir / "model.pt", dof=1)
    assert model.task.dof == 1 and model.meta["exploration"] == "kgps"
    assert model.meta["steps"] == metrics["steps"]
    best = ControlPolicy.load(run_dir / "best.pt", dof=1)
    assert best.net.hidden == (400, 300)
    assert set(np.unique(model.act(_omegas(300)))) <= {3, 4, 5}
    # model.pt holds the final weights, which are those of the training checkpoint
    ck = load_checkpoint(run_dir / "checkpoint.pt")
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, ck["model"][k]), k
    # the final evaluation in the history is reproducible from model.pt
    res = run_trials(model.act, cfg.task(), cfg.eval_trials, seed=2017 + 1 + 1)
    assert res.success_rate == pytest.approx(metrics["history"][-1]["success_rate"])


RESUME = dict(dof=1, total_steps=3200, num_envs=16, learning_starts=500, eval_every=1600,
              eval_trials=20, batch_size=64, checkpoint_every=800, threads=1)


class _Interrupt(Exception):
    pass


def _interrupting_log(msg):
    raise _Interrupt(msg)


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    cfg = TrainConfig(**RESUME)
    full = train(cfg, str(tmp_path / "a"), progress=False, log=lambda m: None)
    # the first log line comes at the first evaluation (step 1600), after the checkpoint at 800
    with pytest.raises(_Interrupt):
        train(cfg, str(tmp_path / "b"), progress=False, log=_interrupting_log)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 800
    assert not (tmp_path / "b" / "model.pt").exists()
    logs = []
    resumed = train(cfg, str(tmp_path / "b"), resume=True, progress=False, log=logs.append)
    assert any("resumed" in line and "800" in line for line in logs)
    assert resumed["steps"] == full["steps"] == 3200
    assert resumed["updates"] == full["updates"]
    assert [h["step"] for h in resumed["history"]] == [1600, 3200]
    assert ([h["success_rate"] for h in resumed["history"]]
            == [h["success_rate"] for h in full["history"]])
    a = ControlPolicy.load(tmp_path / "a" / "model.pt").net.state_dict()
    b = ControlPolicy.load(tmp_path / "b" / "model.pt").net.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)


def test_policy_ema_saves_the_averaged_weights_and_resumes_exactly(tmp_path):
    cfg = TrainConfig(**(RESUME | {"policy_ema": 0.05, "kinematic": True, "dueling": True,
                                   "random_fraction": 0.3}))
    full = train(cfg, str(tmp_path / "a"), progress=False, log=lambda m: None)
    ck = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    saved = ControlPolicy.load(tmp_path / "a" / "model.pt").net.state_dict()
    assert saved.keys() == ck["policy_model"].keys()
    for k in saved:  # model.pt is the moving average, not the online network
        assert torch.equal(saved[k], ck["policy_model"][k]), k
    assert any(not torch.equal(saved[k], ck["model"][k]) for k in saved)
    # resuming restores the average too: same final weights as an uninterrupted run
    with pytest.raises(_Interrupt):
        train(cfg, str(tmp_path / "b"), progress=False, log=_interrupting_log)
    resumed = train(cfg, str(tmp_path / "b"), resume=True, progress=False, log=lambda m: None)
    assert resumed["updates"] == full["updates"]
    b = ControlPolicy.load(tmp_path / "b" / "model.pt").net.state_dict()
    for k in saved:
        torch.testing.assert_close(b[k], saved[k], rtol=0, atol=0)


def test_random_fraction_puts_non_guide_actions_in_replay(tmp_path):
    # K-GPS alone never takes "unchanged" far from the target; random exploration does
    def far_noops(fraction):
        cfg = TrainConfig(**(RESUME | {"dof": 3, "total_steps": 1600, "random_fraction": fraction,
                                       "learning_starts": 10_000, "eps_end": 1.0}))  # always explore
        train(cfg, str(tmp_path / str(fraction)), progress=False, log=lambda m: None)
        with np.load(tmp_path / str(fraction) / "replay.npz") as r:
            n = int(r["pos"])
            noop = np.isin(r["action"][:n], (2, 5, 8))
            not_guided = r["guided"][:n] == 0
            return int(np.sum(not_guided)), int(np.sum(noop & not_guided))
    assert far_noops(0.0) == (0, 0)
    n_random, n_noop = far_noops(0.5)
    assert 600 < n_random < 1000 and n_noop > 100


def test_success_bonus_rewards_closer_successes_in_replay(tmp_path):
    # with n_step 1 every stored reward is one step's; successes carry 1 + bonus * (1 - d/delta)
    def success_rewards(bonus):
        cfg = TrainConfig(**(RESUME | {"dof": 1, "total_steps": 1600, "learning_starts": 10_000,
                                       "eps_end": 1.0, "success_bonus": bonus}))
        train(cfg, str(tmp_path / str(bonus)), progress=False, log=lambda m: None)
        with np.load(tmp_path / str(bonus) / "replay.npz") as r:
            n = int(r["pos"])
            done = r["discount"][:n] == 0          # a successful trial's last transition
            return r["reward"][:n][done]
    plain, bonus = success_rewards(0.0), success_rewards(1.0)
    assert plain.size > 10 and np.all(plain == 1.0)
    assert bonus.size == plain.size and np.all((bonus > 1.0) & (bonus <= 2.0))
    assert len(np.unique(bonus)) > 5               # depends on the final distance
    with pytest.raises(ValueError, match="success_bonus"):
        TrainConfig(success_bonus=-0.1)


def test_init_from_starts_from_the_given_weights_and_checks_the_architecture(tmp_path, tiny_run):
    _, run_dir, _, _ = tiny_run
    src = ControlPolicy.load(run_dir / "model.pt")
    logs = []
    cfg = TrainConfig(**(TINY | {"init_from": str(run_dir / "model.pt"), "total_steps": 32,
                                 "eval_every": 32, "learning_starts": 10_000}))
    train(cfg, str(tmp_path / "ft"), progress=False, log=logs.append)  # no update: weights as given
    got = ControlPolicy.load(tmp_path / "ft" / "model.pt").net.state_dict()
    for k, v in src.net.state_dict().items():
        assert torch.equal(got[k], v), k
    assert any("initialised from" in line for line in logs)
    with pytest.raises(CheckpointError, match="architecture"):
        train(replace(cfg, dueling=not cfg.dueling), str(tmp_path / "bad"), progress=False,
              log=lambda m: None)
    with pytest.raises(CheckpointError, match="DoF"):
        train(replace(cfg, dof=3), str(tmp_path / "bad2"), progress=False, log=lambda m: None)


def test_time_budget_stops_early_with_a_final_evaluation(tmp_path):
    cfg = TrainConfig(**(RESUME | {"total_steps": 10_000_000, "time_budget": 1.0}))
    logs = []
    metrics = train(cfg, str(tmp_path), progress=False, log=logs.append)
    assert metrics["steps"] < 10_000_000 and any("time budget" in line for line in logs)
    assert metrics["history"][-1]["step"] == metrics["steps"]


def test_resume_with_other_settings_raises(tmp_path):
    cfg = TrainConfig(**(RESUME | {"total_steps": 800}))
    train(cfg, str(tmp_path), progress=False, log=lambda m: None)
    with pytest.raises(CheckpointError) as exc:
        train(replace(cfg, lr=1e-3), str(tmp_path), resume=True, progress=False, log=lambda m: None)
    assert "lr" in str(exc.value) and "other settings" in str(exc.value)


def test_resume_without_checkpoint_raises(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        train(TrainConfig(**RESUME), str(tmp_path), resume=True, progress=False, log=lambda m: None)


def test_cli_resume_extends_a_finished_run(tmp_path, capsys):
    # `reach train control --resume --total-steps N` keeps the saved settings but the new length
    out = str(tmp_path / "run")
    common = ["--out", out, "--no-progress", "--threads", "1"]
    rc = cli_main(["train", "control", "--dof", "1", "--total-steps", "1600", "--num-envs", "16",
                   "--learning-starts", "500", "--eval-every", "800", "--eval-trials", "20",
                   "--batch-size", "64", *common])
    assert rc == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 1600
    rc = cli_main(["train", "control", "--resume", "--total-steps", "3200", *common])
    err = capsys.readouterr().err
    assert rc == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3200
    assert [h["step"] for h in metrics["history"]] == [800, 1600, 2400, 3200]


def test_cli_refuses_to_overwrite_a_run(tmp_path, capsys):
    cfg = TrainConfig(**(RESUME | {"total_steps": 800}))
    train(cfg, str(tmp_path), progress=False, log=lambda m: None)
    rc = cli_main(["train", "control", "--out", str(tmp_path), "--no-progress"])
    assert rc == 2
    assert "already holds a run" in capsys.readouterr().err


# --- evaluation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dof, noop", [(3, 2), (1, 5)])
def test_run_trials_with_noop_policy(dof, noop):
    task = TaskConfig(dof=dof, max_steps=12)
    trials, seed = 300, 5
    ref = ReachEnv(trials, task, seed=seed, auto_reset=False)
    d0 = ref.distance()
    res = run_trials(lambda om: np.full(len(om), noop), task, trials=trials, seed=seed)
    assert isinstance(res, EvalResult) and res.trials == trials
    np.testing.assert_array_equal(res.final_distance_m, d0)
    inside = d0 <= task.delta
    np.testing.assert_array_equal(res.success, inside)
    assert res.success_rate == pytest.approx(inside.mean())
    steps = np.where(inside, task.success_steps, task.max_steps)
    assert res.mean_steps == pytest.approx(steps.mean())
    ret = np.where(inside, 1.0, task.max_steps * task.reward_scale * (task.delta / d0 - 1))
    assert res.mean_return == pytest.approx(ret.mean(), rel=1e-9)
    assert res.d_med_cm == pytest.approx(np.median(d0) * 100)
    assert res.d_q3_cm == pytest.approx(np.percentile(d0, 75) * 100)
    assert res.d_med_px == pytest.approx(np.median(d0) / 0.025)  # 2.1 m crop over 84 px
    s = res.summary()
    assert "final_distance_m" not in s and s["trials"] == trials


def test_run_trials_noop_all_far_fails():
    task = TaskConfig(dof=3, max_steps=7)
    res = run_trials(lambda om: np.full(len(om), 2), task, trials=50, seed=123)
    far = res.final_distance_m > task.delta
    assert far.sum() >= 45
    assert not res.success[far].any()
    # a policy that does nothing never succeeds from outside delta; its steps are max_steps there
    assert res.mean_steps <= task.max_steps


def test_run_trials_kgps_like_oracle_through_observe():
    # "observe" hands the policy the environment itself, so an oracle can use K-GPS
    task = TaskConfig(dof=2, max_steps=300)
    res = run_trials(lambda env: env.kgps_actions(), task, trials=50, seed=4, observe=lambda env: env)
    assert res.success_rate == 1.0
    assert res.d_med_cm < task.delta * 100 and res.mean_return > 0


def test_format_table():
    task = TaskConfig(dof=3, max_steps=5)
    res = run_trials(lambda om: np.full(len(om), 2), task, trials=20, seed=1)
    text = format_table({"noop 3-DoF": res, "again": res}, "title line")
    lines = text.splitlines()
    assert lines[0] == "title line"
    assert "success %" in lines[1] and "d_med cm" in lines[1]
    row = next(line for line in lines if line.startswith("noop 3-DoF"))
    assert f"{100 * res.success_rate:.2f}" in row and f"{res.d_med_cm:.2f}" in row
    assert f"{res.mean_steps:.1f}" in row
    assert sum(line.startswith("again") for line in lines) == 1
    assert format_table({"x": res}).splitlines()[0].strip().startswith("success %")
