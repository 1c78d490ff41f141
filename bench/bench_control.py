"""Figures of the control module (issue: foundation): Table 2 for the shipped networks.

    python bench/bench_control.py [--trials 400]

Evaluates every shipped control network (src/reach_core/reach_core/models/control_dof*.pt) with
the paper's protocol (uniform targets and start configurations, seed 2017), plain greedy and with
the ROS controller's no-revisit rule (reach_core.control.NoRevisit), prints the table beside
the paper's Table 2 and the issue's targets, and the training wall-clock and throughput recorded
with each model.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from reach_core.control import ControlPolicy, NoRevisit
from reach_core.evaluation import EVAL_SEED, PAPER_TABLE2, format_table, run_trials

MODELS = Path(__file__).resolve().parents[1] / "src" / "reach_core" / "reach_core" / "models"
TARGETS = {1: "success 100 %", 2: "success >= 99.5 %", 3: "success >= 99 %, d_med <= 3.4 cm"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=400)
    a = p.parse_args()
    rows, notes = {}, []
    for path in sorted(MODELS.glob("control_dof*.pt")):
        policy = ControlPolicy.load(path)
        dof = policy.task.dof
        rows[f"{policy.meta.get('exploration')} {dof}-DoF"] = run_trials(
            policy.act, policy.task, a.trials, seed=EVAL_SEED)
        # the ROS controller's loop breaker (never move to a configuration the trial has already
        # visited) on the same trials
        rows[f"{policy.meta.get('exploration')} {dof}-DoF no-revisit"] = run_trials(
            NoRevisit(policy), policy.task, a.trials, seed=EVAL_SEED)
        info = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
        t = info.get("training", {})
        notes.append(f"{dof}-DoF: target {TARGETS[dof]}; trained {t.get('steps', 0):,} steps in "
                     f"{t.get('elapsed_s', float('nan')):.0f} s "
                     f"({t.get('env_steps_per_s', float('nan')):,.0f} "
                     f"env steps/s, {t.get('updates_per_s', float('nan')):,.0f} updates/s); "
                     f"command: {info.get('command', '?')}")
    print(format_table(rows, f"Control networks (ours), {a.trials} trials, seed {EVAL_SEED}; "
                             "no-revisit: with the controller's rule never to revisit a configuration"))
    print("\npaper, Table 2 (d_med cm, d_Q3 cm, success %):")
    for method, by_dof in PAPER_TABLE2.items():
        for dof, (med, q3, succ) in by_dof.items():
            print(f"  {method:<8} {dof}-DoF  {med:5.1f} {q3:5.1f} {succ:7.2f}")
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
