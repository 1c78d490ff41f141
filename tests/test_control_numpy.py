"""The control policy in numpy (reach_core.control_numpy): the torch policy's Q-values and
actions, for the shipped controllers and the network's variants."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reach_core.control import ControlPolicy, QNetwork, load_control
from reach_core.control_numpy import NumpyPolicy
from reach_core.simulator import TaskConfig

MODELS = Path(__file__).resolve().parents[1] / "src/reach_core/reach_core/models"


def _scenes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    omega = rng.random((n, 5)).astype(np.float32)
    omega[: n // 5, 2:] = np.round(omega[: n // 5, 2:])     # joints at their limits
    return omega


@pytest.mark.parametrize("name", ["control_dof1.pt", "control_dof3.pt", "end2end_ee2ft.pt"])
def test_the_numpy_policy_picks_the_torch_policy_actions_for_the_shipped_controllers(name):
    policy = load_control(str(MODELS / name))
    fast = NumpyPolicy(policy)
    omega = _scenes(3000)
    with torch.no_grad():
        want_q = policy.net(torch.from_numpy(omega)).numpy()
    np.testing.assert_allclose(fast.q_values(omega), want_q, atol=1e-4, rtol=0)
    forbid = np.random.default_rng(1).random((len(omega), 9)) < 0.3
    np.testing.assert_array_equal(fast.act(omega, forbid=forbid), policy.act(omega, forbid=forbid))
    np.testing.assert_array_equal(fast.act(omega), policy.act(omega))
    assert int(fast.act(omega[0])) == int(policy.act(omega[0]))


@pytest.mark.parametrize("variant", [dict(encoding=2), dict(dueling=True),
                                     dict(kinematic=True, dueling=True)])
def test_the_numpy_network_matches_each_variant_of_the_q_network(variant):
    torch.manual_seed(0)
    policy = ControlPolicy(QNetwork(hidden=(32, 16), **variant), TaskConfig(dof=2), {})
    fast = NumpyPolicy(policy)
    omega = _scenes(500, seed=2)
    with torch.no_grad():
        want = policy.net(torch.from_numpy(omega)).numpy()
    assert np.ptp(want) > 1e-3
    np.testing.assert_allclose(fast.q_values(omega), want, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(fast.act(omega), policy.act(omega))


def test_the_numpy_policy_measures_from_the_tool_point_its_network_was_trained_for():
    torch.manual_seed(0)
    task = TaskConfig(dof=3, tool="electric_gripper_fingertips")
    net = QNetwork(hidden=(32, 16), kinematic=True, dueling=True, tool_length=task.arm.tool_length)
    policy = ControlPolicy(net, task, {})
    fast = NumpyPolicy(policy)
    omega = _scenes(2000, seed=3)
    with torch.no_grad():
        want = policy.net(torch.from_numpy(omega)).numpy()
    np.testing.assert_allclose(fast.q_values(omega), want, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(fast.act(omega), policy.act(omega))
