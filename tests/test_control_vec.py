"""Tests of the vectorised control trainer (reach_core.control_vec): its torch environment steps
exactly as the NumPy simulator, a short run learns, and its model loads in ``reach eval control``.
Runs are tiny (CPU, one thread, a few seconds)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reach_core.cli import main as cli_main
from reach_core.control import CheckpointError, ControlPolicy
from reach_core.control_training import TrainConfig
from reach_core.control_vec import DeviceReplay, TorchReachEnv, train
from reach_core.evaluation import run_trials
from reach_core.simulator import ReachEnv, TaskConfig, action_mask


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _copy_state(numpy_env: ReachEnv, torch_env: TorchReachEnv) -> None:
    for k in ("q", "q_star", "target", "n_within", "t"):
        setattr(torch_env, k, torch.from_numpy(getattr(numpy_env, k).copy()))


@pytest.mark.parametrize("dof,hold", [(1, False), (2, True), (3, False), (3, True)])
def test_the_torch_environment_steps_exactly_like_the_numpy_one(dof, hold):
    task = TaskConfig(dof=dof, hold_only_at_target=hold, max_steps=25)
    n, rng = 1000, np.random.default_rng(dof)
    ref = ReachEnv(n, task, seed=dof, auto_reset=False)
    env = TorchReachEnv(n, task, "cpu", dtype=torch.float64, auto_reset=False)
    ends = successes = 0
    for _ in range(30):  # 30,000 transitions: K-GPS brings many trials to the goal (success)
        _copy_state(ref, env)
        assert np.array_equal(env.available_actions().numpy(), ref.available_actions())
        kgps = ref.kgps_actions()
        assert np.array_equal(env.kgps_actions().numpy(), kgps)
        actions = np.where(rng.random(n) < 0.8, kgps, ref.random_actions())
        want, got = ref.step(actions), env.step(torch.from_numpy(actions))
        np.testing.assert_allclose(got["final_obs"].numpy(), want.final_obs, atol=1e-6)
        np.testing.assert_allclose(got["reward"].numpy(), want.reward, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got["distance"].numpy(), want.distance, rtol=1e-12)
        assert np.array_equal(got["terminated"].numpy(), want.terminated)
        assert np.array_equal(got["truncated"].numpy(), want.truncated)
        done = want.terminated | want.truncated
        ends, successes = ends + done.sum(), successes + want.terminated.sum()
        ref.reset(np.flatnonzero(done))
    assert successes > 20 and ends > successes  # both kinds of ending were compared


def test_the_torch_environment_restarts_only_the_trials_that_ended():
    task = TaskConfig(dof=3, max_steps=3)
    env = TorchReachEnv(64, task, "cpu", seed=1)
    q_before = env.q.clone()
    for _ in range(2):
        env.step(env.kgps_actions())
    target = env.target.clone()
    res = env.step(env.kgps_actions())            # the third step truncates every unfinished trial
    assert bool((res["terminated"] | res["truncated"]).all())
    assert bool((env.t == 0).all()) and not torch.equal(env.target, target)
    assert not torch.allclose(env.q, q_before)
    low, high = env.q_low, env.q_high
    assert bool(((env.q >= low) & (env.q <= high)).all())
    np.testing.assert_allclose(env.forward(env.q_star).numpy(), env.target.numpy(), atol=1e-6)


def test_the_device_replay_keeps_the_newest_transitions_when_full():
    memory = DeviceReplay(10, "cpu")
    for k in range(3):
        obs = torch.full((4, 5), float(k))
        memory.add(obs, torch.full((4,), k), torch.full((4,), float(k)), obs, torch.ones(4))
    assert len(memory) == 10
    assert sorted(memory.reward.tolist()) == [0.0, 0.0, 1, 1, 1, 1, 2, 2, 2, 2]
    batch = memory.sample(50, torch.Generator().manual_seed(0))
    assert batch[0].shape == (50, 5) and batch[1].dtype == torch.int64


def _tiny(**kw) -> TrainConfig:
    base = dict(dof=1, total_steps=10_240, num_envs=256, learning_starts=2_000, batch_size=256,
                updates_per_step=1 / 16, hidden=(64, 64), eval_every=10_240, eval_trials=100, max_steps=100,
                lr=1e-3, kinematic=True, dueling=True, hold_only_at_target=True, threads=1,
                checkpoint_every=10 ** 9)
    return TrainConfig(**(base | kw))


def test_a_short_vectorised_run_beats_the_random_policy_on_one_dof(tmp_path):
    metrics = train(_tiny(), str(tmp_path / "run"), progress=False, log=lambda *_: None)
    assert metrics["steps"] >= 10_240 and metrics["updates"] > 400
    policy = ControlPolicy.load(tmp_path / "run" / "model.pt")
    trained = run_trials(policy.act, policy.task, 200, seed=5).success_rate
    rng, moves = np.random.default_rng(0), np.flatnonzero(action_mask(1))
    random = run_trials(lambda o: rng.choice(moves, size=len(o)), policy.task, 200, seed=5).success_rate
    assert trained >= random + 0.3, (trained, random)


def test_the_vectorised_command_writes_a_run_that_reach_eval_control_loads(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_main(["train", "control", "--vectorised", "--envs", "64", "--device", "cpu", "--dof", "1",
                     "--total-steps", "1280", "--learning-starts", "256", "--eval-every", "640",
                     "--eval-trials", "10", "--batch-size", "32", "--hidden", "32", "32",
                     "--threads", "1", "--out", str(run), "--no-progress"]) == 0
    for name in ("config.json", "model.pt", "best.pt", "checkpoint.pt", "progress.csv", "metrics.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["num_envs"] == 64
    assert json.loads((run / "metrics.json").read_text())["steps"] == 1280
    capsys.readouterr()
    assert cli_main(["eval", "control", "--model", str(run / "model.pt"), "--trials", "20",
                     "--max-steps", "30"]) == 0
    out = capsys.readouterr().out
    assert "kgps 1-DoF" in out and "20 trials" in out


@pytest.mark.parametrize("n", [1, 3, 5])
def test_the_device_n_step_window_gives_the_cpu_trainers_n_step_transitions(n):
    """The same random stream of steps (trials ending in success or truncation) through the CPU
    trainer's NStep and VecNStep: the same multiset of (Omega, a, G, Omega', discount), apart from
    the last n - 1 steps, which VecNStep has not emitted yet and NStep keeps until they end."""
    from reach_core.control_training import NStep
    from reach_core.control_vec import VecNStep
    envs, steps, gamma = 6, 60, 0.9
    rng = np.random.default_rng(n)
    cpu, dev = NStep(n, envs, gamma), VecNStep(n, envs, gamma, torch.device("cpu"))
    got_cpu, got_dev = [], []

    def fresh(t):   # Omega's first coordinate holds the step at which it was seen
        o = rng.random((envs, 5), dtype=np.float32)
        o[:, 0] = t
        return o
    obs = fresh(0)
    for t in range(steps):
        action, reward = rng.integers(0, 9, envs), rng.normal(size=envs).astype(np.float32)
        nxt = fresh(t + 1)
        end = rng.random(envs)
        terminated, truncated = end < 0.1, (end >= 0.1) & (end < 0.2)
        out = cpu.push(obs, action, reward.astype(np.float64), nxt, terminated, truncated, np.zeros(envs))
        got_cpu += list(zip(*[np.asarray(a).tolist() for a in out[:5]])) if out else []
        out = dev.push(*(torch.as_tensor(a) for a in (obs, action, reward, nxt, terminated, truncated)))
        got_dev += list(zip(*[a.numpy().tolist() for a in out])) if out else []
        obs = np.where((terminated | truncated)[:, None], fresh(t + 1), nxt)

    def key(row):   # (Omega, a) identifies where a transition starts: the floats are random
        return (tuple(np.round(row[0], 5)), row[1])
    cpu_rows, dev_rows = {key(r): r for r in got_cpu}, {key(r): r for r in got_dev}
    assert len(dev_rows) == len(got_dev) == (steps - n + 1) * envs
    assert set(dev_rows) <= set(cpu_rows)
    for k, (_, _, g, nxt, disc) in dev_rows.items():
        _, _, g_cpu, nxt_cpu, disc_cpu = cpu_rows[k]
        assert g == pytest.approx(g_cpu, rel=1e-5, abs=1e-5)
        assert disc == pytest.approx(disc_cpu, rel=1e-6)
        np.testing.assert_allclose(nxt, nxt_cpu, rtol=0, atol=1e-7)
    # NStep's transitions that VecNStep has not emitted all start in the last n - 1 steps
    late = [r[0][0] for k, r in cpu_rows.items() if k not in dev_rows]
    assert all(t >= steps - n + 1 for t in late)


def test_the_vectorised_trainer_refuses_options_it_does_not_implement(tmp_path):
    with pytest.raises(CheckpointError, match="noop_augment"):
        train(_tiny(noop_augment=0.5), str(tmp_path / "run"), progress=False)
    assert cli_main(["train", "control", "--vectorised", "--action-gap", "0.1", "--out", str(tmp_path / "r2"),
                     "--no-progress"]) == 2
    if not torch.cuda.is_available():  # asking for a GPU where there is none is a clean error too
        with pytest.raises(CheckpointError, match="no CUDA device"):
            train(_tiny(device="cuda"), str(tmp_path / "r3"), progress=False)


def test_the_compiled_update_changes_the_weights_as_the_eager_one_does():
    from reach_core.control_vec import VecActor, VecLearner
    cfg = _tiny(dof=3, hidden=(32, 32), batch_size=64, lr_final_fraction=0.5)
    task = cfg.task()
    actor = VecActor(cfg, task, torch.device("cpu"))
    net = VecLearner(cfg, torch.device("cpu")).net
    while len(actor.memory) < 256:
        actor.step(net, 1.0)
    gen = torch.Generator().manual_seed(3)
    batches = [actor.memory.sample(cfg.batch_size, gen) for _ in range(6)]
    learners = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        learner = VecLearner(TrainConfig(**{**cfg.__dict__, "compile": compiled}), torch.device("cpu"))
        losses = []
        for k, batch in enumerate(batches):
            learner.set_lr(cfg.lr * (1 - 0.1 * k))
            losses.append(float(learner.update(batch, actor.mask, task.hold_radius)))
        learners[compiled] = (learner, losses)
    (eager, l_eager), (comp, l_comp) = learners[False], learners[True]
    np.testing.assert_allclose(l_comp, l_eager, rtol=1e-4, atol=1e-7)
    for a, b in zip(eager.net.parameters(), comp.net.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    for a, b in zip(eager.policy.parameters(), comp.policy.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(eager.net.parameters(), eager.target.parameters()))


def test_only_the_vectorised_trainer_compiles_and_only_on_cuda_captures_graphs(tmp_path):
    from reach_core.control_training import train as train_cpu
    for option in ("compile", "cuda_graph"):
        with pytest.raises(CheckpointError, match="--vectorised"):
            train_cpu(_tiny(**{option: True}), str(tmp_path / "run"), progress=False)
    with pytest.raises(CheckpointError, match="--cuda-graph needs --device cuda"):
        train(_tiny(cuda_graph=True), str(tmp_path / "r2"), progress=False)


def test_the_device_evaluation_gives_the_numpy_evaluations_figures():
    """run_trials_on_device (the vectorised trainer's periodic evaluation) draws other trials than
    run_trials: the same success rate, distances and trial lengths within sampling error, for
    the shipped 3-DoF controller and for an untrained network."""
    from reach_core.control import QNetwork
    from reach_core.control_vec import run_trials_on_device
    from reach_core.configs import MODELS
    shipped = ControlPolicy.load(MODELS / "control_dof3.pt")
    torch.manual_seed(0)
    untrained = ControlPolicy(QNetwork(), TaskConfig(dof=3), {})
    for policy in (shipped, untrained):
        dev = run_trials_on_device(policy, policy.task, 300, seed=3)
        ref = run_trials(policy.act, policy.task, 300)
        assert dev.trials == 300 and abs(dev.success_rate - ref.success_rate) <= 0.04, (dev, ref)
        assert abs(dev.d_med_cm - ref.d_med_cm) <= 0.1 * ref.d_med_cm + 0.3, (dev, ref)
        assert abs(dev.mean_steps - ref.mean_steps) <= 0.15 * ref.mean_steps, (dev, ref)
    assert dev.success_rate < 0.2 and dev.mean_steps > 200
