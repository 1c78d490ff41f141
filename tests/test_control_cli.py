"""Tests of `reach train control` (control_cli.py): --resume with a new length extends a finished
run, and a run directory is never overwritten."""
from __future__ import annotations

import json

from reach_core.cli import main as cli_main
from reach_core.control_training import TrainConfig, train

from test_control_training import RESUME


def test_cli_resume_extends_a_finished_run(tmp_path, capsys):
    # `reach train control --resume --total-steps N` keeps the saved settings but the new length
    out = str(tmp_path / "run")
    common = ["--out", out, "--no-progress", "--threads", "1"]
    rc = cli_main(["train", "control", "--dof", "1", "--total-steps", "1600", "--num-envs", "16",
                   "--learning-starts", "500", "--eval-every", "800", "--eval-trials", "20",
                   "--batch-size", "64", *common])
    assert rc == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 1600
    rc = cli_main(["train", "control", "--resume", "--total-steps", "3200", *common])
    err = capsys.readouterr().err
    assert rc == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3200
    assert [h["step"] for h in metrics["history"]] == [800, 1600, 2400, 3200]


def test_cli_refuses_to_overwrite_a_run(tmp_path, capsys):
    cfg = TrainConfig(**(RESUME | {"total_steps": 800}))
    train(cfg, str(tmp_path), progress=False, log=lambda m: None)
    rc = cli_main(["train", "control", "--out", str(tmp_path), "--no-progress"])
    assert rc == 2
    assert "already holds a run" in capsys.readouterr().err
