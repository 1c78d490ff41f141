"""Training on several processes (DistributedDataParallel, gloo on the CPU): 2 processes with a
global batch B give the weights of 1 process with batch B; bad settings are clear errors."""
from __future__ import annotations

import csv

import pytest
import torch

from reach_core import distributed
from reach_core import perception as P
from reach_core.cli import main


def _tiny(out, **kw) -> P.TrainConfig:
    base = dict(out=str(out), sim_images=64, supersample=1, steps=6, batch=8, lr=2e-3, warmup=2,
                eval_every=3, checkpoint_every=3, val_sim=8, width=0.5, seed=3)
    return P.TrainConfig(**{**base, **kw})


def _weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k


def _rows(out) -> list[dict]:
    with open(out / "progress.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _one_process(cfg: P.TrainConfig) -> None:
    torch.set_num_threads(1)
    P.train(cfg, progress=False)


@pytest.mark.parametrize("extra", [{}, dict(augment_sim=True, translation=2.0, noise=0.02, randomize=0.5)],
                         ids=["plain", "augmented"])
def test_two_gloo_processes_train_the_weights_of_one_process_with_the_same_global_batch(tmp_path, extra):
    one, two = _tiny(tmp_path / "one", **extra), _tiny(tmp_path / "two", **extra)
    distributed.launch(1, _one_process, one)      # the same code path, a process group of 1
    distributed.launch(2, P.train, two, False, False)
    a, b = _weights(tmp_path / "one" / "model.pt"), _weights(tmp_path / "two" / "model.pt")
    _assert_same_weights(a, b)
    start = P.PerceptionNet(one.arch_config()).state_dict()
    assert any(not torch.allclose(start[k], a[k]) for k in a), "the weights did not move"
    rows_one, rows_two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(rows_two) == len(rows_one) == 2    # only rank 0 wrote the run folder, once per eval
    for r1, r2 in zip(rows_one, rows_two):        # the loss of the global batch, not of a half
        assert float(r2["loss"]) == pytest.approx(float(r1["loss"]), rel=1e-4)
        assert float(r2["e_sim"]) == pytest.approx(float(r1["e_sim"]), rel=1e-4)


def test_a_run_of_two_processes_differs_from_one_process_with_half_the_batch(tmp_path):
    distributed.launch(2, P.train, _tiny(tmp_path / "two"), False, False)
    _one_process(_tiny(tmp_path / "half", batch=4))
    a, b = _weights(tmp_path / "two" / "model.pt"), _weights(tmp_path / "half" / "model.pt")
    assert any(not torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)


def test_a_batch_that_does_not_divide_over_the_processes_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="--batch 9 is not divisible by the 2 processes"):
        distributed.check_batch(9, 2)
    rc = main(["train", "perception", "--nproc", "2", "--batch", "9", "--steps", "1",
               "--out", str(tmp_path / "bad"), "--no-progress"])
    assert rc == 2
    assert "--batch 9 is not divisible by the 2 processes" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "model.pt").exists()


def test_alone_the_process_group_is_not_joined_and_nothing_is_wrapped():
    w = distributed.setup(torch.device("cpu"), batch=9)
    net = torch.nn.Linear(2, 2)
    assert (w.rank, w.size, w.main) == (0, 1, True)
    assert distributed.wrap(net) is net
    assert distributed.agree(1.5, torch.device("cpu")) == 1.5


# ----------------------------------------------------------------------------- end-to-end fine-tuning
@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    from reach_core.control import ControlPolicy, QNetwork
    from reach_core.datasets import render_hifi_dataset
    from reach_core.simulator import TaskConfig

    d = tmp_path_factory.mktemp("ddp_e2e")
    torch.manual_seed(0)
    ControlPolicy(QNetwork((32, 32), dueling=True, kinematic=True),
                  TaskConfig(dof=3, hold_only_at_target=True),
                  {"config": {"n_step": 3, "success_bonus": 0.5}}).save(d / "ctrl3.pt")
    P.PerceptionModel(P.PerceptionNet(P.ArchConfig("paper", width=0.25)), {}).save(d / "perc.pt")
    render_hifi_dataset(d / "hifi", 3, seed=5, progress=False)
    return d


def _finetune_cfg(modules, out, **kw):
    from reach_core.end_to_end import FinetuneConfig

    base = dict(perception=str(modules / "perc.pt"), control=str(modules / "ctrl3.pt"),
                real=str(modules / "hifi"), out=str(out), steps=4, task_batch=8, perception_batch=8,
                learning_starts=32, num_envs=4, eval_every=2, eval_trials=2, sim_pool=16,
                virtual_targets=2, supersample=1, threads=1)
    return FinetuneConfig(**{**base, **kw})


def _finetune(cfg) -> None:
    from reach_core.end_to_end import finetune
    finetune(cfg, progress=False)


def _e2e_weights(path) -> dict:
    from reach_core.end_to_end import EndToEndModel
    m = EndToEndModel.load(path)
    return {**{f"p.{k}": v for k, v in m.net.perception.state_dict().items()},
            **{f"c.{k}": v for k, v in m.net.control.state_dict().items()}}


def test_two_gloo_processes_fine_tune_end_to_end_as_one_process_with_the_same_global_batches(
        modules, tmp_path):
    distributed.launch(1, _finetune, _finetune_cfg(modules, tmp_path / "one"))
    distributed.launch(2, _finetune, _finetune_cfg(modules, tmp_path / "two"))
    a, b = _e2e_weights(tmp_path / "one" / "model.pt"), _e2e_weights(tmp_path / "two" / "model.pt")
    _assert_same_weights(a, b)
    start = P.PerceptionModel.load(modules / "perc.pt").net.state_dict()
    assert any(not torch.allclose(start[k], a[f"p.{k}"]) for k in start), "the weights did not move"
    r1, r2 = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(r1) == len(r2) == 2
    for x, y in zip(r1, r2):
        assert float(y["lq"]) == pytest.approx(float(x["lq"]), rel=1e-4)
        assert float(y["lp"]) == pytest.approx(float(x["lp"]), rel=1e-4)


def test_a_perception_batch_that_does_not_divide_over_the_processes_is_a_clear_error(modules, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")      # as torchrun would set it; fails before joining
    with pytest.raises(ValueError, match="--perception-batch 9 is not divisible by the 2 processes"):
        _finetune(_finetune_cfg(modules, tmp_path / "bad", perception_batch=9))
    with pytest.raises(ValueError, match="--batch 7 is not divisible by the 2 processes"):
        _finetune(_finetune_cfg(modules, tmp_path / "bad", task_batch=7))


def test_two_gloo_processes_adapt_with_real_and_unlabelled_frames_as_one_process(tmp_path):
    """Real rows, L2-SP and the mean teacher's second forward pass in one step, under DDP."""
    import numpy as np

    from reach_core.datasets import write_dataset
    from reach_core.kinematics import BAXTER_LEFT
    from reach_core.renderer import render

    q = BAXTER_LEFT.sample_joints(np.random.default_rng(0), 6)
    frames = np.stack([render(np.full(2, 5.0), q[i]) for i in range(6)])   # no disc: virtual
    write_dataset(tmp_path / "real", lambda t, qc, s: frames[s:s + len(qc)], BAXTER_LEFT.forward(q), q,
                  target_mode="virtual", progress=False)
    torch.manual_seed(0)
    P.PerceptionModel(P.PerceptionNet(P.ArchConfig("paper", width=0.5)), {}).save(tmp_path / "sim.pt")
    kw = dict(adapt_from=str(tmp_path / "sim.pt"), real=str(tmp_path / "real"), real_fraction=0.5,
              virtual_targets=2, translation=2.0, l2sp=0.1, unlabelled=str(tmp_path / "real"),
              unlabelled_fraction=0.25, unlabelled_weight=1.0)
    distributed.launch(1, _one_process, _tiny(tmp_path / "one", **kw))
    distributed.launch(2, P.train, _tiny(tmp_path / "two", **kw), False, False)
    a, b = _weights(tmp_path / "one" / "model.pt"), _weights(tmp_path / "two" / "model.pt")
    _assert_same_weights(a, b)
    start = P.PerceptionModel.load(tmp_path / "sim.pt").net.state_dict()
    assert any(not torch.allclose(start[k], a[k]) for k in a), "the weights did not move"
