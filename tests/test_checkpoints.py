"""One save/load contract for every model (reach_core.checkpoints), the run folder
(reach_core.runs), and commands that take a perception network taking a combined end-to-end
checkpoint's perception half."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from reach_core import checkpoints, runs
from reach_core.cli import main
from reach_core.control import ControlPolicy, QNetwork
from reach_core.end_to_end import EndToEndModel
from reach_core.perception import ArchConfig, PerceptionCheckpointError, PerceptionModel, PerceptionNet
from reach_core.renderer import render_net_images, sample_scenes
from reach_core.simulator import TaskConfig

MODELS = checkpoints.__file__.rsplit("/", 1)[0] + "/models"
CLASSES = {checkpoints.CONTROL_FORMAT: ControlPolicy, checkpoints.PERCEPTION_FORMAT: PerceptionModel,
           checkpoints.END2END_FORMAT: EndToEndModel}


def _weights(model) -> dict:
    ckpt = model.checkpoint()
    if "model" in ckpt:
        return ckpt["model"]
    return {f"{part}.{k}": v for part in ("perception", "control") for k, v in ckpt[part]["model"].items()}


@pytest.mark.parametrize("name", ["control_dof1", "control_dof3", "perception_sim", "perception_adapted",
                                  "end2end_ee2ft"])
def test_every_shipped_model_loads_and_saves_through_the_one_contract(name, tmp_path):
    path = f"{MODELS}/{name}.pt"
    fmt = checkpoints.load_checkpoint(path)["format"]
    cls = CLASSES[fmt]
    model = cls.load(path)
    assert isinstance(model, checkpoints.Checkpointable) and model.FORMAT == fmt
    model.save(tmp_path / "again.pt", note="x")
    again = checkpoints.load_checkpoint(tmp_path / "again.pt")
    assert again["format"] == fmt and again["note"] == "x" and again["meta"] == model.meta
    reloaded = cls.load(tmp_path / "again.pt")
    a, b = _weights(model), _weights(reloaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_each_model_class_refuses_another_kind_with_its_own_error(tmp_path):
    ControlPolicy(QNetwork((8,)), TaskConfig(dof=1), {}).save(tmp_path / "c.pt")
    with pytest.raises(PerceptionCheckpointError, match="not a reach perception checkpoint"):
        PerceptionModel.load(tmp_path / "c.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a reach end-to-end checkpoint"):
        EndToEndModel.load(tmp_path / "c.pt")
    with pytest.raises(PerceptionCheckpointError, match="not found"):
        PerceptionModel.load(tmp_path / "missing.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "c.pt").read_bytes()[:100])
    with pytest.raises(checkpoints.CheckpointError, match="cannot read"):
        ControlPolicy.load(tmp_path / "cut.pt")


def test_a_perception_network_is_read_from_a_combined_checkpoint_too(tmp_path, capsys):
    combined = EndToEndModel.load(f"{MODELS}/end2end_ee2ft.pt")
    half = PerceptionModel.load(f"{MODELS}/end2end_ee2ft.pt")
    t, q = sample_scenes(4, 3)
    x = render_net_images(t, q, supersample=1)
    np.testing.assert_allclose(half.predict(x), combined.perceive(x), atol=1e-6)
    js = tmp_path / "m.json"
    assert main(["eval", "perception", "--model", f"FT={MODELS}/end2end_ee2ft.pt", "--sim-test", "5",
                 "--json", str(js)]) == 0
    assert json.loads(js.read_text())["FT"]["sim"]["n"] == 5 and "FT" in capsys.readouterr().out
    # and as the starting network of a perception run (its perception half, its architecture)
    run = tmp_path / "run"
    assert main(["train", "perception", "--config", "perception_tiny", "--adapt-from",
                 f"{MODELS}/end2end_ee2ft.pt", "--steps", "2", "--eval-every", "2", "--out", str(run),
                 "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["arch"] == half.arch.arch
    # a combined checkpoint without its perception half is named as such
    ckpt = checkpoints.load_checkpoint(f"{MODELS}/end2end_ee2ft.pt")
    del ckpt["perception"]
    torch.save(ckpt, tmp_path / "half.pt")
    with pytest.raises(PerceptionCheckpointError, match="without its perception module"):
        PerceptionModel.load(tmp_path / "half.pt")


def test_the_end2end_commands_take_combined_checkpoints_for_either_module(tmp_path):
    torch.manual_seed(0)
    PerceptionModel(PerceptionNet(ArchConfig(width=0.25))).save(tmp_path / "p.pt")
    ControlPolicy(QNetwork((8,)), TaskConfig(dof=3), {}).save(tmp_path / "c.pt")
    EndToEndModel.from_modules(tmp_path / "p.pt", tmp_path / "c.pt").save(tmp_path / "e2e.pt")
    again = EndToEndModel.from_modules(tmp_path / "e2e.pt", tmp_path / "e2e.pt")
    assert again.perception.arch.width == 0.25 and again.task.dof == 3
    assert main(["export", "end2end", "--perception", str(tmp_path / "e2e.pt"), "--control",
                 str(tmp_path / "c.pt"), "--out", str(tmp_path / "m.ts")]) == 0


def test_a_run_folder_holds_config_checkpoint_progress_metrics_and_plot(tmp_path):
    run = runs.Run(tmp_path / "r")
    run.write_config(ArchConfig(width=0.5))
    assert json.loads((tmp_path / "r" / "config.json").read_text())["width"] == 0.5
    run.record({"step": 1, "loss": 1.0, "e_sim": 0.5})
    run.save_checkpoint({"step": 1})
    run.record({"step": 2, "loss": 0.5, "e_sim": 0.25, "e_real": 0.3})
    resumed = runs.Run(tmp_path / "r")
    assert resumed.load_checkpoint()["step"] == 1 and resumed.rows == [{"step": 1, "loss": 1.0, "e_sim": 0.5}]
    run.finish({"steps": 2}, runs.plot_progress, "curve.png", title="t")
    rows = list(csv.DictReader(open(tmp_path / "r" / "progress.csv")))
    assert [r["step"] for r in rows] == ["1", "2"] and rows[0]["e_real"] == ""     # the union of columns
    assert json.loads((tmp_path / "r" / "metrics.json").read_text()) == {"steps": 2}
    assert (tmp_path / "r" / "curve.png").stat().st_size > 1000
    with pytest.raises(checkpoints.CheckpointError, match="no .*config.json"):
        runs.Run.read_config(tmp_path / "nothing")


def test_a_failing_plot_is_a_warning_not_a_lost_run(tmp_path, capsys):
    def broken(rows, path):
        raise RuntimeError("no display")

    run = runs.Run(tmp_path)
    run.record({"step": 1, "loss": 1.0})
    assert run.finish({"ok": True}, broken, "x.png") == {"ok": True}
    assert "could not plot x.png: no display" in capsys.readouterr().err
    assert (tmp_path / "metrics.json").is_file() and not (tmp_path / "x.png").exists()
