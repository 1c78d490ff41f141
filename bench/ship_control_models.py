"""Train (optionally), evaluate and ship the control networks the launch files and README load.

    python bench/ship_control_models.py --train      # trains runs/ship/control_dof{1,2,3}, then ships
    python bench/ship_control_models.py              # ships already trained runs

For each DoF: takes the run's best.pt (chosen on the training-time evaluations, whose seeds differ
from the benchmark's), evaluates it with the paper's 400-trial protocol (seed 2017), and writes
src/reach_core/reach_core/models/control_dof<N>.pt plus control_dof<N>.json holding the exact
command, seed, training figures and the evaluation.
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
VARIANT = ["--encoding", "6", "--dueling", "--n-step", "5", "--guide-margin", "0.01",
           "--lr-final-fraction", "0.1", "--seed", "0", "--threads", "1", "--no-progress"]
STEPS = {1: 200_000, 2: 400_000, 3: 600_000}


def command(dof: int) -> list[str]:
    return ["reach", "train", "control", "--dof", str(dof), "--total-steps", str(STEPS[dof]), *VARIANT,
            "--out", f"runs/ship/control_dof{dof}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", action="store_true", help="train the three runs first (--force)")
    p.add_argument("--dof", type=int, nargs="+", default=[1, 2, 3])
    a = p.parse_args()
    MODELS.mkdir(parents=True, exist_ok=True)
    for dof in a.dof:
        cmd = command(dof)
        if a.train:
            subprocess.run([sys.executable, "-m", "reach_core.cli", *cmd[1:], "--force"], check=True, cwd=ROOT)
        run = ROOT / f"runs/ship/control_dof{dof}"
        policy = ControlPolicy.load(run / "best.pt", dof=dof)
        res = run_trials(policy.act, policy.task, 400, seed=EVAL_SEED)
        metrics = json.loads((run / "metrics.json").read_text())
        shutil.copyfile(run / "best.pt", MODELS / f"control_dof{dof}.pt")
        info = {
            "model": f"control_dof{dof}.pt",
            "command": " ".join(cmd),
            "seed": metrics["config"]["seed"],
            "config": metrics["config"],
            "selected": "best.pt: the highest success rate over the training-time evaluations",
            "selected_at_step": policy.meta.get("steps"),
            "training": {k: metrics[k] for k in ("steps", "updates", "elapsed_s", "env_steps_per_s",
                                                 "updates_per_s", "final_success_rate", "best_success_rate")},
            "eval_400": res.summary() | {"seed": EVAL_SEED},
        }
        (MODELS / f"control_dof{dof}.json").write_text(json.dumps(info, indent=2) + "\n")
        print(f"control_dof{dof}: success {100 * res.success_rate:.2f} %  d_med {res.d_med_cm:.2f} cm  "
              f"d_Q3 {res.d_q3_cm:.2f} cm  ({res.d_med_px:.2f} / {res.d_q3_px:.2f} px)")


if __name__ == "__main__":
    main()
