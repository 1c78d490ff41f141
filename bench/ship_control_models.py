"""Train (optionally), evaluate and ship the control networks the launch files and README load.

    python bench/ship_control_models.py --train              # trains runs/ship/*, then ships
    python bench/ship_control_models.py                      # ships already trained runs
    python bench/ship_control_models.py --train --dof 3 --exploration egreedy

For each DoF and exploration: takes the run's best.pt (chosen on the training-time evaluations,
whose seeds differ from the benchmark's), evaluates it with the paper's 400-trial protocol
(seed 2017), and writes src/reach_core/reach_core/models/control_dof<N>[_egreedy].pt plus a .json
holding the exact command, seed, training figures (with the learning curve) and the evaluation.
The epsilon-greedy baselines get the same recipe and step budget as the K-GPS networks.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from reach_core.control import ControlPolicy
from reach_core.evaluation import EVAL_SEED, run_trials

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "reach_core" / "reach_core" / "models"
# The shipped recipe: the paper's DQN + K-GPS (5-400-300-9 MLP, replay, target network, epsilon
# 1 -> 0.1) with the variants that made it reach Table 2 on a CPU budget (README, "Control module").
RECIPE = ["--kinematic", "--dueling", "--n-step", "5", "--lr-final-fraction", "0.1",
          "--policy-ema", "0.001", "--hold-only-at-target", "--seed", "0", "--threads", "1",
          "--no-progress"]
STEPS = {1: 200_000, 2: 600_000, 3: 800_000}
EVAL_EVERY = {1: 25_000, 2: 100_000, 3: 100_000}


def name(dof: int, exploration: str) -> str:
    return f"control_dof{dof}" + ("" if exploration == "kgps" else f"_{exploration}")


def command(dof: int, exploration: str) -> list[str]:
    return ["reach", "train", "control", "--dof", str(dof), "--exploration", exploration,
            "--total-steps", str(STEPS[dof]), "--eval-every", str(EVAL_EVERY[dof]), *RECIPE,
            "--out", f"runs/ship/{name(dof, exploration)}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", action="store_true", help="train the runs first (--force)")
    p.add_argument("--dof", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--exploration", nargs="+", default=["kgps"], choices=("kgps", "egreedy"))
    a = p.parse_args()
    MODELS.mkdir(parents=True, exist_ok=True)
    for exploration in a.exploration:
        for dof in a.dof:
            cmd = command(dof, exploration)
            if a.train:
                subprocess.run([sys.executable, "-m", "reach_core.cli", *cmd[1:], "--force"],
                               check=True, cwd=ROOT)
            run = ROOT / cmd[-1]
            policy = ControlPolicy.load(run / "best.pt", dof=dof)
            res = run_trials(policy.act, policy.task, 400, seed=EVAL_SEED)
            metrics = json.loads((run / "metrics.json").read_text())
            out = MODELS / f"{name(dof, exploration)}.pt"
            shutil.copyfile(run / "best.pt", out)
            info = {
                "model": out.name,
                "command": " ".join(cmd),
                "seed": metrics["config"]["seed"],
                "config": metrics["config"],
                "selected": "best.pt: the highest success rate over the training-time evaluations",
                "selected_at_step": policy.meta.get("steps"),
                "training": {k: metrics[k] for k in ("steps", "updates", "elapsed_s", "env_steps_per_s",
                                                     "updates_per_s", "final_success_rate",
                                                     "best_success_rate", "history")},
                "eval_400": res.summary() | {"seed": EVAL_SEED},
            }
            out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
            print(f"{out.name}: success {100 * res.success_rate:.2f} %  d_med {res.d_med_cm:.2f} cm  "
                  f"d_Q3 {res.d_q3_cm:.2f} cm  ({res.d_med_px:.2f} / {res.d_q3_px:.2f} px)")


if __name__ == "__main__":
    main()
