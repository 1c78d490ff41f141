"""Tests of the control training (control_training.py): the Learner's update and the Actor's greedy
actions against their torch references, TrainConfig, and tiny train() runs (~1 s, a few thousand
steps): run files, resuming, the policy average, exploration and reward options, init_from, the
time budget.  RESUME is shared with test_control_cli.py."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from reach_core.control import (CheckpointError, ControlPolicy, QNetwork, available_actions, load_checkpoint,
                                masked_argmax)
from reach_core.control_training import Actor, Learner, TrainConfig, train
from reach_core.evaluation import run_trials
from reach_core.scene import normalise
from reach_core.simulator import ReachEnv, TaskConfig, action_mask

from test_control_network import _omegas
from test_control_replay import _filled_memory


# --- the update and the actor ---------------------------------------------------------------------

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
    the cache computed them (the cache's numpy values equal them to rounding:
    test_control_replay.py)."""
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
