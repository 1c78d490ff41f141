"""Tests of the evaluation protocol (evaluation.py): run_trials' distances, successes, steps and
returns, observe hooks, and format_table."""
from __future__ import annotations

import numpy as np
import pytest

from reach_core.evaluation import EvalResult, format_table, run_trials
from reach_core.simulator import ReachEnv, TaskConfig


@pytest.mark.parametrize("dof, noop", [(3, 2), (1, 5)])
def test_run_trials_with_noop_policy(dof, noop):
    task = TaskConfig(dof=dof, max_steps=12)
    trials, seed = 300, 5
    ref = ReachEnv(trials, task, seed=seed, auto_reset=False)
    d0 = ref.distance()
    res = run_trials(lambda om: np.full(len(om), noop), task, trials=trials, seed=seed)
    assert isinstance(res, EvalResult) and res.trials == trials
    np.testing.assert_array_equal(res.final_distance_m, d0)
    inside = d0 <= task.delta
    np.testing.assert_array_equal(res.success, inside)
    assert res.success_rate == pytest.approx(inside.mean())
    steps = np.where(inside, task.success_steps, task.max_steps)
    assert res.mean_steps == pytest.approx(steps.mean())
    ret = np.where(inside, 1.0, task.max_steps * task.reward_scale * (task.delta / d0 - 1))
    assert res.mean_return == pytest.approx(ret.mean(), rel=1e-9)
    assert res.d_med_cm == pytest.approx(np.median(d0) * 100)
    assert res.d_q3_cm == pytest.approx(np.percentile(d0, 75) * 100)
    assert res.d_med_px == pytest.approx(np.median(d0) / 0.025)  # 2.1 m crop over 84 px
    s = res.summary()
    assert "final_distance_m" not in s and s["trials"] == trials


def test_run_trials_noop_all_far_fails():
    task = TaskConfig(dof=3, max_steps=7)
    res = run_trials(lambda om: np.full(len(om), 2), task, trials=50, seed=123)
    far = res.final_distance_m > task.delta
    assert far.sum() >= 45
    assert not res.success[far].any()
    # a policy that does nothing never succeeds from outside delta; its steps are max_steps there
    assert res.mean_steps <= task.max_steps


def test_run_trials_kgps_like_oracle_through_observe():
    # "observe" hands the policy the environment itself, so an oracle can use K-GPS
    task = TaskConfig(dof=2, max_steps=300)
    res = run_trials(lambda env: env.kgps_actions(), task, trials=50, seed=4, observe=lambda env: env)
    assert res.success_rate == 1.0
    assert res.d_med_cm < task.delta * 100 and res.mean_return > 0


def test_format_table():
    task = TaskConfig(dof=3, max_steps=5)
    res = run_trials(lambda om: np.full(len(om), 2), task, trials=20, seed=1)
    text = format_table({"noop 3-DoF": res, "again": res}, "title line")
    lines = text.splitlines()
    assert lines[0] == "title line"
    assert "success %" in lines[1] and "d_med cm" in lines[1]
    row = next(line for line in lines if line.startswith("noop 3-DoF"))
    assert f"{100 * res.success_rate:.2f}" in row and f"{res.d_med_cm:.2f}" in row
    assert f"{res.mean_steps:.1f}" in row
    assert sum(line.startswith("again") for line in lines) == 1
    assert format_table({"x": res}).splitlines()[0].strip().startswith("success %")
