"""Tests of the control training's replay memory and n-step returns (control_replay.py): NStep's
returns, discounts and flushes, ReplayMemory's ring buffer and its InputCache of network inputs and
available actions.  _filled_memory is shared with test_control_training.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reach_core.control import QNetwork, available_actions
from reach_core.control_replay import InputCache, NStep, ReplayMemory
from reach_core.control_training import TrainConfig
from reach_core.scene import normalise
from reach_core.simulator import ReachEnv, action_mask


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
