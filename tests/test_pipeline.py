"""Tests of ``reach pipeline`` (reach_core.pipeline): the stages from the plan recipe, what
--stop-after runs, independent stages side by side, resume with the recorded times, a failure, and
a tiny run of the real commands on the CPU."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from reach_core import pipeline
from reach_core.cli import main as cli_main
from reach_core.datasets import render_hifi_dataset


def _stages(tmp_path, hifi_train=None, **overrides):
    plan = pipeline.load_plan("pipeline", True, overrides)
    return pipeline.build_stages(plan, tmp_path, "cpu", hifi_train)


def test_stop_after_runs_that_stage_and_only_the_stages_it_needs(tmp_path):
    stages = _stages(tmp_path)
    assert pipeline.wanted(stages, "adapt") == ["data", "sim", "adapt"]
    assert pipeline.wanted(stages, "control") == ["control_stage1", "control"]
    assert pipeline.wanted(stages, None) == list(stages)
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        pipeline.wanted(stages, "nope")


def test_stages_take_the_plan_recipes_the_tiny_overlays_and_the_flags(tmp_path):
    stages = _stages(tmp_path, sim_budget=100.0, control_split=0.75)
    sim = stages["sim"].argv
    assert sim[sim.index("--time-budget") + 1] == "100"
    configs = [sim[i + 1] for i, a in enumerate(sim) if a == "--config"]
    assert Path(configs[0]).name == "perception_pipeline_sim.yaml"
    assert configs[-1] == str(tmp_path / "recipes/tiny_sim.yaml") and Path(configs[-1]).is_file()
    ctl = stages["control"].argv           # stage 2 starts from stage 1's best network
    assert ctl[ctl.index("--init-from") + 1] == str(tmp_path / "control_stage1/best.pt")
    assert ctl[ctl.index("--time-budget") + 1] == "25"
    assert stages["control"].needs == ("control_stage1",)
    given = _stages(tmp_path, hifi_train=str(tmp_path / "frames"))
    assert given["data"].argv is None
    assert str(tmp_path / "frames") in given["adapt"].argv


def _fake_run(log: list, fail: str | None = None):
    """A run_stage that sleeps, writes the stage's products and records when it ran."""
    lock = threading.Lock()

    def run(stage, out):
        t0 = time.perf_counter()
        time.sleep(0.3)
        for p in stage.products:
            Path(p).parent.mkdir(parents=True, exist_ok=True)
            Path(p).write_text("x")
        with lock:
            log.append((stage.key, t0, time.perf_counter()))
        return 3 if stage.key == fail else 0
    return run


def _args(out, **kw):
    argv = ["pipeline", "--tiny", "--out", str(out)]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return argv


def test_independent_stages_run_side_by_side_and_a_stage_waits_for_what_it_needs(tmp_path, monkeypatch):
    log = []
    monkeypatch.setattr(pipeline, "run_stage", _fake_run(log))
    assert cli_main(_args(tmp_path / "p", stop_after="adapt")) == 0
    when = {k: (a, b) for k, a, b in log}
    assert set(when) == {"data", "sim", "adapt"}
    assert when["data"][0] < when["sim"][1] and when["sim"][0] < when["data"][1]   # overlapped
    assert when["adapt"][0] >= max(when["data"][1], when["sim"][1])
    times = json.loads((tmp_path / "p/pipeline_times.json").read_text())
    assert times["sim"] == pytest.approx(0.3, abs=0.25) and "control" not in times
    # resume: the done stages are skipped with their recorded times; the rest run
    log.clear()
    assert cli_main(_args(tmp_path / "p", resume=True)) == 0
    assert "sim" not in {k for k, *_ in log} and {"control", "finetune", "table3"} <= {k for k, *_ in log}
    again = json.loads((tmp_path / "p/pipeline_times.json").read_text())
    assert again["sim"] == times["sim"] and again["wall total"] > times["wall total"]


def test_a_failed_stage_stops_the_stages_that_need_it(tmp_path, monkeypatch, capsys):
    log = []
    monkeypatch.setattr(pipeline, "run_stage", _fake_run(log, fail="control_stage1"))
    (tmp_path / "p/logs").mkdir(parents=True)
    (tmp_path / "p/logs/control_stage1.log").write_text("boom\n")
    assert cli_main(_args(tmp_path / "p")) == 1
    ran = {k for k, *_ in log}
    assert "control_stage1" in ran and not {"control", "finetune", "table3"} & ran
    assert "control stage 1" in capsys.readouterr().err
    assert json.loads((tmp_path / "p/pipeline_times.json").read_text())["failed"] == "control_stage1"


def test_a_tiny_pipeline_trains_the_sim_stage_then_resumes_past_it(tmp_path):
    render_hifi_dataset(tmp_path / "hifi", 3, seed=5, progress=False)
    out = tmp_path / "p"
    assert cli_main(_args(out, stop_after="sim", hifi_train=tmp_path / "hifi")) == 0
    assert (out / "sim/model.pt").is_file() and (out / "sim/metrics.json").is_file()
    cfg = json.loads((out / "sim/config.json").read_text())
    assert cfg["arch"] == "spatial" and cfg["steps"] == 2 and cfg["device"] == "cpu"
    first = json.loads((out / "pipeline_times.json").read_text())["sim"]
    assert cli_main(_args(out, stop_after="sim", hifi_train=tmp_path / "hifi", resume=True)) == 0
    assert json.loads((out / "pipeline_times.json").read_text())["sim"] == first


def test_the_fast_plan_trains_control_vectorised_on_the_device_and_perception_in_bf16(tmp_path):
    plan = pipeline.load_plan("pipeline_fast", False, {})
    stages = pipeline.build_stages(plan, tmp_path, "cuda", None)
    for key in ("control_stage1", "control"):
        argv = stages[key].argv
        assert "--vectorised" in argv and argv[argv.index("--device") + 1] == "cuda"
    sim = stages["sim"].argv
    recipes = [Path(sim[i + 1]).name for i, a in enumerate(sim) if a == "--config"]
    assert recipes[1:] == ["perception_fast.yaml", "perception_pipeline_sim_fast.yaml"]
    assert "--vectorised" not in pipeline.build_stages(pipeline.load_plan("pipeline", False, {}),
                                                       tmp_path, "cuda", None)["control"].argv


def test_a_tiny_fast_pipeline_runs_both_vectorised_control_stages(tmp_path):
    out = tmp_path / "p"
    assert cli_main(_args(out, config="pipeline_fast", stop_after="control")) == 0
    for stage in ("control_stage1", "control"):
        assert (out / stage / "best.pt").is_file()
        assert "done (control_vec)" in (out / "logs" / f"{stage}.log").read_text()
    metrics = json.loads((out / "control/metrics.json").read_text())
    assert metrics["trainer"] == "control_vec"
    assert metrics["config"]["success_bonus"] == 0.5 and metrics["config"]["num_envs"] == 8
