"""Tests of the control policy's checkpoints (control.py): ControlPolicy.save / load round trips
and the clean CheckpointError of every kind of bad file (missing, empty, corrupt, foreign,
another architecture or DoF, malformed header or weights)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reach_core.control import CHECKPOINT_FORMAT, CheckpointError, ControlPolicy, QNetwork, load_checkpoint

from test_control_network import _omegas, _policy


def _assert_clean(err: CheckpointError, *words):
    msg = str(err)
    for w in words:
        assert w in msg, msg
    assert "Traceback" not in msg and "\n" not in msg, msg
    # no chained torch/pickle exception would be printed with it
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


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
