"""Tests of the vectorised reaching task (simulator.py): actions, reward Eq. 5, success, resets."""
from __future__ import annotations

import numpy as np
import pytest

from reach_core.kinematics import BAXTER_LEFT, JOINT_LIMITS, KinematicsError
from reach_core.scene import check_omega, normalise
from reach_core.simulator import (NUM_ACTIONS, ReachEnv, TaskConfig, action_deltas, action_mask,
                                  reward)

Q_MID = np.array([0.3, 0.8, 0.2])  # well inside all joint limits
NOOP = {1: 5, 2: 5, 3: 2}          # an action that leaves every joint unchanged, per DoF mode


def _env(dof=3, n=1, seed=0, **task):
    return ReachEnv(n, TaskConfig(dof=dof, **task), seed=seed)


# --- reward (Eq. 5) -------------------------------------------------------------------------------

def test_reward_far_values():
    cfg = TaskConfig()
    d = np.array([0.1, 0.5, 0.05 + 1e-9, 1.0])
    np.testing.assert_allclose(reward(d, np.zeros(4), cfg), 1e-3 * (0.05 / d - 1.0), rtol=1e-12)
    assert reward(np.array([0.1]), np.array([0]), cfg)[0] == pytest.approx(-5e-4, abs=1e-15)
    # far away: the count of steps within delta does not matter
    assert reward(np.array([0.1]), np.array([10]), cfg)[0] == pytest.approx(-5e-4, abs=1e-15)


def test_reward_inside_delta():
    cfg = TaskConfig()
    d = np.array([0.0, 0.01, 0.05, 0.05, 0.02, 0.03])
    n = np.array([0, 1, 3, 4, 4, 7])
    np.testing.assert_array_equal(reward(d, n, cfg), [0, 0, 0, 1, 1, 1])


def test_reward_uses_config():
    cfg = TaskConfig(delta=0.1, reward_scale=0.01, success_steps=2)
    np.testing.assert_allclose(reward(np.array([0.2, 0.1, 0.1]), np.array([0, 1, 2]), cfg),
                               [0.01 * (0.5 - 1), 0, 1])


# --- actions and masks ----------------------------------------------------------------------------

def test_action_deltas_and_masks():
    d = action_deltas(0.04)
    assert d.shape == (NUM_ACTIONS, 3)
    for j in range(3):
        np.testing.assert_array_equal(d[3 * j], np.eye(3)[j] * 0.04)
        np.testing.assert_array_equal(d[3 * j + 1], -np.eye(3)[j] * 0.04)
        np.testing.assert_array_equal(d[3 * j + 2], 0.0)
    np.testing.assert_array_equal(action_mask(1), [0, 0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(action_mask(2), [0, 0, 0, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(action_mask(3), [1] * 9)
    with pytest.raises(ValueError, match="dof"):
        action_mask(4)
    with pytest.raises(ValueError, match="dof"):
        TaskConfig(dof=0)


@pytest.mark.parametrize("action", range(NUM_ACTIONS))
def test_each_action_moves_one_joint_by_step(action):
    env = _env(dof=3)
    env.set_scenes(Q_MID, BAXTER_LEFT.forward([0.0, 1.5, 0.0]))
    env.step(np.array([action]))
    expected = Q_MID + action_deltas(0.04)[action]
    np.testing.assert_allclose(env.q[0], expected, rtol=0, atol=1e-15)
    moved = np.abs(env.q[0] - Q_MID)
    assert np.count_nonzero(moved > 1e-12) == (0 if action % 3 == 2 else 1)
    if action % 3 != 2:
        assert moved.max() == pytest.approx(0.04, abs=1e-15)


def test_actions_clip_at_joint_limits():
    env = _env(dof=3, n=6)
    lo, hi = JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1]
    q = np.tile(Q_MID, (6, 1))
    for j in range(3):
        q[2 * j, j] = hi[j] - 0.01   # + step would overshoot the upper limit
        q[2 * j + 1, j] = lo[j] + 0.01  # - step would overshoot the lower limit
    env.set_scenes(q, BAXTER_LEFT.forward(Q_MID))
    env.step(np.array([0, 1, 3, 4, 6, 7]))
    for j in range(3):
        assert env.q[2 * j, j] == hi[j]
        assert env.q[2 * j + 1, j] == lo[j]
    # and it stays there when pushed again
    env.step(np.array([0, 1, 3, 4, 6, 7]))
    for j in range(3):
        assert env.q[2 * j, j] == hi[j]
        assert env.q[2 * j + 1, j] == lo[j]


def test_one_dof_moves_only_e1_and_masks_others():
    env = _env(dof=1, n=4, seed=3)
    np.testing.assert_array_equal(env.action_mask, action_mask(1))
    # inactive joints of the target configuration equal the start's (Algorithm 1)
    np.testing.assert_array_equal(env.q_star[:, [0, 2]], env.q[:, [0, 2]])
    rng = np.random.default_rng(0)
    for _ in range(30):
        q0 = env.q.copy()
        a = rng.choice([3, 4, 5], size=4)
        res = env.step(a)
        ended = res.terminated | res.truncated
        np.testing.assert_array_equal(env.q[~ended][:, [0, 2]], q0[~ended][:, [0, 2]])
        exp_e1 = np.clip(q0[:, 1] + np.select([a == 3, a == 4], [0.04, -0.04], 0.0),
                         JOINT_LIMITS[1, 0], JOINT_LIMITS[1, 1])
        np.testing.assert_allclose(env.q[~ended, 1], exp_e1[~ended], atol=1e-15)
    for bad in (0, 1, 2, 6, 7, 8):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(np.array([bad, 3, 3, 3]))


def test_two_dof_moves_e1_and_w1_only():
    env = _env(dof=2, n=1)
    np.testing.assert_array_equal(env.action_mask, action_mask(2))
    env.set_scenes(Q_MID, BAXTER_LEFT.forward([0.3, 1.5, 0.0]))
    env.step(np.array([3]))
    env.step(np.array([7]))
    np.testing.assert_allclose(env.q[0], Q_MID + [0, 0.04, -0.04], atol=1e-15)
    for bad in (0, 1, 2):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(np.array([bad]))
    np.testing.assert_allclose(env.q[0], Q_MID + [0, 0.04, -0.04], atol=1e-15)  # unchanged


@pytest.mark.parametrize("bad", [[-1], [9], [3, 3]])
def test_step_rejects_malformed_actions(bad):
    env = _env(dof=3, n=1)
    with pytest.raises(ValueError):
        env.step(np.array(bad))


# --- success, truncation, resets ------------------------------------------------------------------

def test_success_after_exactly_n_steps_within_delta():
    env = _env(dof=3, n=1)
    env.set_scenes(Q_MID, BAXTER_LEFT.forward(Q_MID))
    for k in range(1, 4):
        res = env.step(np.array([NOOP[3]]))
        assert not res.terminated[0] and not res.truncated[0], k
        assert res.reward[0] == 0.0
        assert res.distance[0] == pytest.approx(0.0, abs=1e-12)
        assert env.n_within[0] == k
    res = env.step(np.array([NOOP[3]]))
    assert res.terminated[0] and not res.truncated[0]
    assert res.reward[0] == 1.0
    assert res.info["steps"][0] == 4
    # the final observation is the goal scene, then the trial auto-resets
    np.testing.assert_allclose(res.final_obs[0], normalise(BAXTER_LEFT.forward(Q_MID), Q_MID),
                               atol=1e-7)
    assert not np.allclose(res.obs[0], res.final_obs[0])
    np.testing.assert_allclose(res.obs[0], env.observe()[0])
    assert env.t[0] == 0 and env.n_within[0] == 0
    assert not np.any(np.isnan(env.q_star[0]))  # the new trial has its q* (K-GPS works again)
    env.kgps_actions()


def test_leaving_delta_resets_the_count():
    env = _env(dof=3, n=1)
    env.set_scenes(Q_MID, BAXTER_LEFT.forward(Q_MID))
    # two no-ops, then s1 +0.04 (3.9 cm: still inside delta), then s1 +0.04 again (7.7 cm: out)
    expected_n = [1, 2, 3, 0, 1]
    for a, n_exp in zip([2, 2, 0, 0, 1], expected_n):
        res = env.step(np.array([a]))
        assert env.n_within[0] == n_exp, (a, res.distance)
        assert not res.terminated[0]
        if n_exp == 0:
            assert res.distance[0] > 0.05 and res.reward[0] < 0
        else:
            assert res.distance[0] <= 0.05 and res.reward[0] == 0.0


def test_truncation_at_max_steps():
    env = _env(dof=3, n=2, max_steps=5)
    far = BAXTER_LEFT.forward([0.0, 0.3, 0.0])
    env.set_scenes(np.array([[0.3, 2.0, 0.5], Q_MID]),
                   np.stack([far, BAXTER_LEFT.forward(Q_MID)]))
    for k in range(4):
        res = env.step(np.array([2, 2]))
        assert not res.truncated.any()
        assert res.terminated[1] == (k == 3)
    q_before = env.q[0].copy()
    res = env.step(np.array([2, 2]))
    assert res.truncated[0] and not res.terminated[0]
    assert res.info["steps"][0] == 5
    assert res.reward[0] < 0
    assert env.t[0] == 0  # auto-reset
    assert not np.allclose(env.q[0], q_before)


def test_success_on_last_step_is_not_truncation():
    env = _env(dof=3, n=1, max_steps=4)
    env.set_scenes(Q_MID, BAXTER_LEFT.forward(Q_MID))
    for _ in range(3):
        env.step(np.array([2]))
    res = env.step(np.array([2]))
    assert res.terminated[0] and not res.truncated[0]


def test_no_auto_reset_keeps_final_state():
    env = ReachEnv(1, TaskConfig(max_steps=2), seed=0, auto_reset=False)
    q0 = env.q.copy()
    env.step(np.array([2]))
    res = env.step(np.array([2]))
    assert res.truncated[0]
    np.testing.assert_array_equal(env.q, q0)
    np.testing.assert_array_equal(res.obs, res.final_obs)


@pytest.mark.parametrize("dof", [1, 2, 3])
def test_kgps_reaches_every_target(dof):
    env = ReachEnv(100, TaskConfig(dof=dof), seed=11, auto_reset=False)
    done = np.zeros(100, dtype=bool)
    success = np.zeros(100, dtype=bool)
    for _ in range(env.cfg.max_steps):
        a = env.kgps_actions()
        assert np.all(env.action_mask[a])
        res = env.step(a)
        success |= res.terminated & ~done
        done |= res.terminated | res.truncated
        if done.all():
            break
    assert success.all(), f"{(~success).sum()} of 100 K-GPS trials failed"


def test_kgps_is_the_joint_space_greedy_action():
    env = _env(dof=3, n=1)
    q_star = np.array([0.3 + 0.1, 0.8 - 0.3, 0.2 + 0.05])
    env.set_scenes(Q_MID, BAXTER_LEFT.forward(q_star), q_star)
    assert env.kgps_actions()[0] == 4  # e1 -0.04: the largest joint error
    env.set_scenes(Q_MID, BAXTER_LEFT.forward(Q_MID), Q_MID)
    assert env.kgps_actions()[0] in (2, 5, 8)  # at q*: stay
    env.set_scenes(Q_MID, BAXTER_LEFT.forward(Q_MID))  # no q*
    with pytest.raises(RuntimeError, match="q\\*"):
        env.kgps_actions()


def _rollout(seed, steps=25):
    env = _env(dof=3, n=8, seed=seed, max_steps=10)
    out = [env.observe().copy()]
    for _ in range(steps):
        res = env.step(env.random_actions())
        out += [res.obs.copy(), res.reward.copy()]
    return out


def test_same_seed_same_trajectory_different_seed_differs():
    a, b, c = _rollout(5), _rollout(5), _rollout(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a[0], c[0])
    assert any(not np.array_equal(x, y) for x, y in zip(a[1:], c[1:]))


def test_reset_samples_within_limits_and_reachable_targets():
    env = _env(dof=3, n=500, seed=1)
    assert np.all(env.q >= JOINT_LIMITS[:, 0]) and np.all(env.q <= JOINT_LIMITS[:, 1])
    np.testing.assert_allclose(env.target, BAXTER_LEFT.forward(env.q_star), atol=1e-12)
    obs = env.observe()
    assert obs.shape == (500, 5) and obs.dtype == np.float32
    # Omega of every scene the simulator generates is a valid normalised scene configuration
    check_omega(obs)
    assert np.all((obs >= 0) & (obs <= 1)), obs[np.any((obs < 0) | (obs > 1), axis=1)]


# --- set_scenes validation ------------------------------------------------------------------------

@pytest.mark.parametrize("q, name", [([3.0, 0.5, 0.0], "left_s1"), ([0.0, -0.2, 0.0], "left_e1"),
                                     ([0.0, 0.5, 2.2], "left_w1")])
def test_set_scenes_rejects_out_of_range_joints(q, name):
    env = _env()
    with pytest.raises(KinematicsError, match=name):
        env.set_scenes(np.array(q), BAXTER_LEFT.forward(Q_MID))


def test_set_scenes_rejects_nan_joints():
    env = _env()
    with pytest.raises(KinematicsError, match="NaN"):
        env.set_scenes(np.array([0.0, np.nan, 0.0]), BAXTER_LEFT.forward(Q_MID))


@pytest.mark.parametrize("target, msg", [([1.2, 0.0], "reach"), ([0.0, -5.0], "reach"),
                                         ([np.nan, 0.3], "NaN"), ([0.3, np.inf], "NaN")])
def test_set_scenes_rejects_bad_targets(target, msg):
    env = _env(n=2)
    q_before, t_before = env.q.copy(), env.target.copy()
    with pytest.raises(ValueError, match=msg):
        env.set_scenes(Q_MID, np.array(target))
    # nothing was changed by the rejected call
    np.testing.assert_array_equal(env.q, q_before)
    np.testing.assert_array_equal(env.target, t_before)


def test_set_scenes_subset_of_trials():
    env = _env(n=3, seed=2)
    q_before = env.q.copy()
    env.set_scenes(Q_MID, BAXTER_LEFT.forward(Q_MID), idx=np.array([1]))
    np.testing.assert_array_equal(env.q[1], Q_MID)
    np.testing.assert_array_equal(env.q[[0, 2]], q_before[[0, 2]])
    assert np.isnan(env.q_star[1]).all() and not np.isnan(env.q_star[[0, 2]]).any()


def test_task_config_validation():
    with pytest.raises(ValueError, match="step"):
        TaskConfig(step=0)
    with pytest.raises(ValueError, match="delta"):
        TaskConfig(delta=-1)
    with pytest.raises(ValueError):
        TaskConfig(max_steps=0)
    with pytest.raises(ValueError):
        ReachEnv(0)
