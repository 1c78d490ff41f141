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
