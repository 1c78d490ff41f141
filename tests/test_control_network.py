"""Tests of the Q-network and the greedy policy (control.py): the paper's architecture and its
variants, the kinematic features, the available actions (joint limits, "unchanged" only at the
target), ControlPolicy.act with its forbid masks, masked_argmax.  Its helpers (_omegas, _policy,
_biased_policy) are shared by the other test_control_*.py files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reach_core.control import ControlPolicy, QNetwork, available_actions, masked_argmax
from reach_core.kinematics import BAXTER_LEFT, JOINT_LIMITS
from reach_core.scene import normalise
from reach_core.simulator import ReachEnv, TaskConfig, action_mask

PAPER_PARAMS = 5 * 400 + 400 + 400 * 300 + 300 + 300 * 9 + 9


def _omegas(n=256, seed=0):
    return np.random.default_rng(seed).random((n, 5)).astype(np.float32)


def _policy(dof=3, seed=0, **net):
    torch.manual_seed(seed)
    return ControlPolicy(QNetwork(**net), TaskConfig(dof=dof), {"exploration": "kgps", "seed": seed})


def _biased_policy(bias, dof=3, hidden=(8,), hold_only_at_target=False):
    """A policy whose Q-values are the head biases plus (optionally) a weight on Omega, set by hand."""
    task = TaskConfig(dof=dof, hold_only_at_target=hold_only_at_target)
    pol = ControlPolicy(QNetwork(hidden=hidden), task, {})
    with torch.no_grad():
        pol.net.head.weight.zero_()
        pol.net.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return pol


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
