"""Tests of ``reach sweep`` (reach_core.sweep): variants from --vary (every combination, typed
values, devices round-robin), each a run folder trained by the real command side by side, the
summary table and summary.json, skipping finished variants, and clear errors."""
from __future__ import annotations

import json

import pytest

from reach_core import sweep
from reach_core.cli import main as cli_main
from reach_core.control_training import TrainConfig
from reach_core.runs import Run

TINY = ["--set", "total_steps=128", "--set", "learning_starts=32", "--set", "eval_every=128",
        "--set", "eval_trials=2", "--set", "hidden=8", "--set", "threads=1"]


def test_every_combination_of_the_varied_values_is_a_variant_on_the_devices_in_turn():
    vary = sweep.parse_vary(TrainConfig, ["lr=1e-4,3e-4", "n-step=1,3,5"])
    assert vary == {"lr": [1e-4, 3e-4], "n_step": [1, 3, 5]}
    specs = sweep.variants(vary, {"dof": 1}, ["cuda:0", "cuda:1"])
    assert len(specs) == 6 and len({s["name"] for s in specs}) == 6
    assert [s["device"] for s in specs] == ["cuda:0", "cuda:1"] * 3
    assert specs[1]["settings"] == {"dof": 1, "lr": 1e-4, "n_step": 3, "device": "cuda:1"}
    assert sweep.parse_vary(TrainConfig, ["dueling=false", "hidden=16 16"]) == {
        "dueling": [False], "hidden": [[16, 16]]}
    with pytest.raises(ValueError, match="no setting 'lrr'"):
        sweep.parse_vary(TrainConfig, ["lrr=1"])
    with pytest.raises(ValueError, match="not a int"):
        sweep.parse_vary(TrainConfig, ["n_step=three"])


def test_the_training_command_is_the_one_whose_settings_the_recipe_holds():
    assert sweep.guess_command(["control_dof1"]) == "control"
    assert sweep.guess_command(["adapt"]) == "perception"
    assert sweep.guess_command(["end2end_ee2ft"]) == "end2end"


def test_a_sweep_trains_each_variant_side_by_side_and_summarizes_their_metrics(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--config", "control_dof1", "--vary", "lr=1e-3,3e-4", "--parallel", "2",
            "--devices", "cpu", "--out", str(out), *TINY]
    assert cli_main(argv) == 0
    table = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "control" and len(summary["runs"]) == 2
    for run in summary["runs"]:
        cfg = Run.read_config(out / run["name"])
        assert cfg["lr"] == run["values"]["lr"] and cfg["dof"] == 1 and cfg["total_steps"] == 128
        assert run["status"] == "ok" and run["metrics"]["steps"] == 128
        assert 0.0 <= run["metrics"]["final_success_rate"] <= 1.0
        assert run["name"] in table
    header = [line for line in table.splitlines() if line.startswith("run ")]
    assert len(header) == 1 and "lr" in header[0].split() and "final_success_rate" in header[0].split()
    # again: the finished variants are not run twice
    assert cli_main(argv) == 0
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["done before"] * 2


def test_a_failed_variant_is_reported_and_a_bad_setting_is_refused_before_any_run(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert cli_main(["sweep", "--config", "control_dof1", "--vary", "lr=1e-3", "--out", str(out),
                     *TINY, "--set", "eval_every=0"]) == 1
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert runs[0]["status"].startswith("failed") and (out / runs[0]["name"] / "train.log").is_file()
    assert cli_main(["sweep", "--config", "control_dof1", "--vary", "lrr=1",
                     "--out", str(tmp_path / "b")]) == 2
    assert "no setting 'lrr'" in capsys.readouterr().err and not (tmp_path / "b").exists()
