r"""Train (optionally), evaluate and ship the control networks the launch files and README load.

    python scripts/ship_control_models.py --train              # trains runs/ship/*, then ships
    python scripts/ship_control_models.py                      # ships already trained runs
    python scripts/ship_control_models.py --train --dof 3 --exploration egreedy
    python scripts/ship_control_models.py --close-run runs/ship/control_dof3_close   # stage 2, below

The recipes are the YAML files of reach_core/recipes/: control_dof1, control_dof2 and
control_dof3_stage1 (``SHIPPED_RECIPES``) for the K-GPS networks, control_dof3_egreedy for the
epsilon-greedy baseline (at 1 or 2 DoF, which ship no baseline: the K-GPS recipe with
``--exploration egreedy``), each with its step budget and evaluation interval.  For each DoF and
exploration: trains ``reach train control --config RECIPE`` into runs/ship/ (with --train), takes
the run's best.pt (chosen on the training-time evaluations, whose seeds differ from the
benchmark's), evaluates it with the paper's 400-trial protocol (seed 2017), and writes
src/reach_core/reach_core/models/control_dof<N>[_egreedy].pt plus a .json holding the recipe, the
exact command, seed, resolved config, training figures (with the learning curve) and the
evaluation.  The epsilon-greedy baselines get the same recipe and step budget as the K-GPS networks.

Stage 2 of the 3-DoF K-GPS network (``--close-run``): the stage-1 network fine-tuned with a success
reward that grows as the final distance shrinks (``success_bonus``: the recipe control_dof3), so that
the arm ends closer to the target than the 5 cm threshold of Eq. 5 requires.  Train it with

    reach train control --config control_dof3 --init-from runs/ship/control_dof3/best.pt \
        --no-progress --out runs/ship/control_dof3_close

The run's final model.pt replaces control_dof3.pt; its .json keeps stage 1's record under "stage1".
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from reach_core.configs import RECIPES, load_recipe
from reach_core.control import ControlPolicy
from reach_core.control_training import SHIPPED_RECIPES, TrainConfig
from reach_core.evaluation import EVAL_SEED, run_trials

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "reach_core" / "reach_core" / "models"
# The shipped recipes: the paper's DQN + K-GPS (5-400-300-9 MLP, replay, target network, epsilon
# 1 -> 0.1) with the variants that made it reach Table 2 on a CPU budget (docs/control.md).
CLOSE_RECIPE = "control_dof3"   # stage 2 of control_dof3.pt, from stage 1's best.pt (--init-from)


def close_command(stage1: str, run: str) -> list[str]:
    """The command of stage 2 of control_dof3.pt: the recipe CLOSE_RECIPE from ``stage1``."""
    return ["reach", "train", "control", "--config", CLOSE_RECIPE, "--init-from", stage1, "--no-progress",
            "--out", run]


def ship_close(run: Path, note: str) -> None:
    """Ship stage 2 (see the module docstring) from ``run``, a finished run of ``close_command``."""
    from reach_core.control import NoRevisit

    out = MODELS / "control_dof3.pt"
    stage1 = json.loads(out.with_suffix(".json").read_text())
    stage1 = stage1.get("stage1", stage1)
    policy = ControlPolicy.load(run / "model.pt", dof=3)
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = metrics["config"]
    evals = {}
    for label, trials, seed in (("eval_400", 400, EVAL_SEED), ("eval_2000_seed99", 2000, 99)):
        g = run_trials(policy.act, policy.task, trials, seed=seed)
        r = run_trials(NoRevisit(policy), policy.task, trials, seed=seed)
        evals[label] = g.summary() | {"seed": seed}
        evals[label + "_no_revisit"] = r.summary() | {"seed": seed}
        print(f"{label}: greedy {100 * g.success_rate:.2f} % d_med {g.d_med_cm:.2f} cm "
              f"({g.d_med_px:.2f} px); "
              f"no-revisit {100 * r.success_rate:.2f} % d_med {r.d_med_cm:.2f} cm ({r.d_med_px:.2f} px), "
              f"d_Q3 {r.d_q3_cm:.2f} cm")
    shutil.copyfile(run / "model.pt", out)
    info = {
        "recipe": f"{CLOSE_RECIPE}.yaml",
        "model": out.name,
        "command": " ".join(close_command(cfg["init_from"], str(run))),
        "seed": cfg["seed"],
        "config": cfg,
        "selected": "model.pt: the final weights of the fine-tuning run",
        "note": note,
        "training": {k: metrics[k] for k in ("steps", "updates", "elapsed_s", "env_steps_per_s",
                                             "updates_per_s", "final_success_rate",
                                             "best_success_rate", "history")},
        **evals,
        "stage1": stage1,
    }
    out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")


def name(dof: int, exploration: str) -> str:
    """The shipped model's (and its run's) name: control_dof<N>[_egreedy]."""
    return f"control_dof{dof}" + ("" if exploration == "kgps" else f"_{exploration}")


def recipe(dof: int, exploration: str) -> str:
    """The recipe of a shipped network: its own if the package ships one (control_dof3_egreedy),
    else the K-GPS recipe of ``dof``."""
    own = name(dof, exploration)
    return own if exploration != "kgps" and (RECIPES / f"{own}.yaml").is_file() else SHIPPED_RECIPES[dof]


def command(dof: int, exploration: str) -> list[str]:
    """The training command of a shipped network: its recipe (``--exploration`` where that differs)."""
    rec = recipe(dof, exploration)
    given = load_recipe(rec, TrainConfig).get("exploration", TrainConfig.exploration)
    switch = [] if given == exploration else ["--exploration", exploration]
    return ["reach", "train", "control", "--config", rec, *switch, "--no-progress",
            "--out", f"runs/ship/{name(dof, exploration)}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", action="store_true", help="train the runs first (--force)")
    p.add_argument("--dof", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--exploration", nargs="+", default=["kgps"], choices=("kgps", "egreedy"))
    p.add_argument("--close-run", type=Path, default=None,
                   help="ship stage 2 of control_dof3 from this finished run of the recipe "
                        f"{CLOSE_RECIPE} and stop")
    p.add_argument("--note", default="", help="with --close-run: where and how the run was made")
    a = p.parse_args()
    MODELS.mkdir(parents=True, exist_ok=True)
    if a.close_run:
        ship_close(a.close_run, a.note)
        return
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
                "recipe": f"{recipe(dof, exploration)}.yaml",
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
