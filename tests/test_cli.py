"""Tests of the ``reach`` command line (cli.py), run as ``python -m reach_core.cli`` in subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "reach_core"


def reach(*args, cwd=None, timeout=120):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "reach_core.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.mark.parametrize("args, words", [
    ((), ["train", "eval", "render"]),
    (("train", "control"), ["--dof", "--total-steps", "--num-envs", "--out", "--resume",
                            "--no-progress", "--exploration"]),
    (("eval", "control"), ["--model", "--trials", "--seed", "--dof", "--json", "--no-revisit"]),
    (("render", "sheet"), ["--out", "--n", "--seed", "--dof"]),
])
def test_help(args, words):
    res = reach(*args, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: reach")
    for w in words:
        assert w in res.stdout, w
    assert res.stderr == ""


def test_no_command_is_a_usage_error():
    res = reach()
    assert res.returncode == 2
    assert "usage: reach" in res.stderr and "Traceback" not in res.stderr


def _one_line_error(res, *words):
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    for w in words:
        assert w in lines[0], lines[0]


def test_eval_no_revisit_names_the_rule():
    model = SRC / "reach_core" / "models" / "control_dof1.pt"
    res = reach("eval", "control", "--model", model, "--trials", "10", "--no-revisit")
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("kgps 1-DoF no-revisit"))
    assert "100.00" in row
    paper = next(line for line in res.stdout.splitlines() if line.startswith("paper (Table 2)"))
    assert paper.index("100.00") == row.index("100.00")  # columns aligned with the longer name
    help_text = " ".join(reach("eval", "control", "--help").stdout.split())
    assert "never move to a joint configuration" in help_text


def test_eval_missing_model():
    _one_line_error(reach("eval", "control", "--model", "/nonexistent.pt"),
                    "checkpoint file not found", "/nonexistent.pt")


def test_eval_corrupt_model(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00not a checkpoint\xff" * 100)
    _one_line_error(reach("eval", "control", "--model", bad), "cannot read checkpoint", str(bad))


@pytest.mark.parametrize("args", [("train", "control", "--dof", "4"),
                                  ("train", "control", "--total-steps", "many")])
def test_bad_option_values_are_argparse_errors(args):
    res = reach(*args)
    assert res.returncode == 2
    assert "invalid" in res.stderr and "usage:" in res.stderr
    assert "Traceback" not in res.stderr


def test_train_config_error_is_one_line(tmp_path):
    res = reach("train", "control", "--total-steps", "8", "--num-envs", "16", "--out", tmp_path / "r",
                "--no-progress")
    _one_line_error(res, "total_steps")


def test_resume_nothing_to_resume(tmp_path):
    _one_line_error(reach("train", "control", "--resume", "--out", tmp_path, "--no-progress"),
                    "nothing to resume")


def test_train_then_eval(tmp_path):
    run = tmp_path / "run"
    res = reach("train", "control", "--dof", "1", "--total-steps", "1600", "--num-envs", "16",
                "--learning-starts", "400", "--eval-every", "800", "--eval-trials", "10",
                "--batch-size", "32", "--hidden", "64", "64", "--threads", "1",
                "--out", run, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert f"model: {run / 'model.pt'}" in res.stdout
    # --no-progress logs lines instead of a progress bar
    assert "step" in res.stdout and "done (control_training):" in res.stdout
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["dof"] == 1 and cfg["hidden"] == [64, 64] and cfg["total_steps"] == 1600
    assert json.loads((run / "metrics.json").read_text())["steps"] == 1600

    out_json = tmp_path / "eval.json"
    res = reach("eval", "control", "--model", run / "model.pt", "--trials", "20", "--max-steps", "50",
                "--json", out_json)
    assert res.returncode == 0, res.stderr
    assert "success" in res.stdout
    assert "kgps 1-DoF" in res.stdout           # the row name
    assert "20 trials" in res.stdout
    assert "paper (Table 2)" in res.stdout     # the paper's K-GPS 1-DoF row for comparison
    summary = json.loads(out_json.read_text())
    assert summary["trials"] == 20 and 0.0 <= summary["success_rate"] <= 1.0
    assert summary["mean_steps"] <= 50

    # asking for the wrong DoF is a clean error
    _one_line_error(reach("eval", "control", "--model", run / "model.pt", "--dof", "3"),
                    "1-DoF", "3-DoF")
