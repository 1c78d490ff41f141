"""Evaluation protocol of paper section 5.2 (Table 2): many trials, distances and success rate.

Targets and start configurations are uniform (the simulator's sampling); each trial runs until it
succeeds or reaches the step limit, and its *final distance* is the end-effector to target distance
at that moment.  Distances are reported in cm and in pixels of the 84 x 84 network image.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .scene import DEFAULT_CAMERA, CameraConfig
from .simulator import ReachEnv, TaskConfig

EVAL_SEED = 2017  # seed of the benchmark trials; training-time evaluation uses other seeds
PAPER_TABLE2 = {  # dof: (d_med cm, d_Q3 cm, success %) for eps-greedy and K-GPS
    "egreedy": {1: (1.0, 2.3, 100.0), 2: (4.9, 9.0, 83.75), 3: (14.5, 28.5, 50.25)},
    "kgps": {1: (0.7, 1.1, 100.0), 2: (2.8, 3.7, 99.5), 3: (3.4, 4.3, 98.5)},
}


@dataclass
class EvalResult:
    trials: int
    success_rate: float       # fraction of trials that succeeded
    d_med_cm: float
    d_q3_cm: float
    d_med_px: float
    d_q3_px: float
    mean_return: float        # average accumulated reward R-bar (Table 3)
    mean_steps: float         # actions per trial
    final_distance_m: np.ndarray
    success: np.ndarray

    @classmethod
    def of_trials(cls, final_d: np.ndarray, success: np.ndarray, returns: np.ndarray, steps: np.ndarray,
                  camera: CameraConfig = DEFAULT_CAMERA) -> "EvalResult":
        """The figures of trials with these final distances (m), success flags, returns and
        numbers of actions."""
        d_cm = final_d * 100.0
        px = final_d / camera.m_per_net_px
        return cls(
            trials=len(final_d),
            success_rate=float(success.mean()),
            d_med_cm=float(np.median(d_cm)), d_q3_cm=float(np.percentile(d_cm, 75)),
            d_med_px=float(np.median(px)), d_q3_px=float(np.percentile(px, 75)),
            mean_return=float(returns.mean()), mean_steps=float(steps.mean()),
            final_distance_m=final_d, success=success)

    def summary(self) -> dict:
        out = asdict(self)
        out.pop("final_distance_m")
        out.pop("success")
        return out


def run_trials(policy: Callable[[np.ndarray], np.ndarray], task: TaskConfig, trials: int = 400,
               seed: int = EVAL_SEED, camera: CameraConfig = DEFAULT_CAMERA,
               observe: Callable[[ReachEnv], np.ndarray] | None = None) -> EvalResult:
    """Run ``trials`` trials of ``policy`` (Omega batch -> action batch) side by side.

    ``observe`` turns the environment into the policy's input; by default the ground-truth Omega
    (the paper's "CR" setting).  End-to-end evaluation passes a renderer + perception network.
    """
    env = ReachEnv(trials, task, seed=seed, auto_reset=False)
    observe = observe or ReachEnv.observe
    active = np.ones(trials, dtype=bool)
    returns = np.zeros(trials)
    steps = np.zeros(trials, dtype=np.int64)
    final_d = env.distance()
    success = np.zeros(trials, dtype=bool)
    while np.any(active):
        actions = np.asarray(policy(observe(env)))
        res = env.step(actions)
        returns[active] += res.reward[active]
        steps[active] += 1
        final_d[active] = res.distance[active]
        success[active] = res.terminated[active]
        active &= ~(res.terminated | res.truncated)
        # trials that have ended keep being stepped (vectorised) but nothing of theirs is recorded
    return EvalResult.of_trials(final_d, success, returns, steps, camera)


def format_table(rows: dict[str, EvalResult], title: str = "") -> str:
    """A Table 2 style text table, one row per named result (the name column fits the names)."""
    w = max([22] + [len(name) + 2 for name in rows])
    head = (f"{'':<{w}}{'success %':>10}{'d_med cm':>10}{'d_Q3 cm':>9}{'d_med px':>10}"
            f"{'d_Q3 px':>9}{'R-bar':>8}{'steps':>7}")
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(f"{name:<{w}}{100 * r.success_rate:>10.2f}{r.d_med_cm:>10.2f}{r.d_q3_cm:>9.2f}"
                     f"{r.d_med_px:>10.2f}{r.d_q3_px:>9.2f}{r.mean_return:>8.3f}{r.mean_steps:>7.1f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
def _cmd_eval_control(args) -> int:
    from .control import CheckpointError, ControlPolicy, NoRevisit
    from .kinematics import ToolError, check_tool

    try:
        policy = ControlPolicy.load(args.model, dof=args.dof)
        if args.tool is not None:
            check_tool(args.tool, policy.task.tool, f"control model {args.model}")
    except (CheckpointError, ToolError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    task = policy.task
    if args.max_steps:
        task.max_steps = args.max_steps
    act = NoRevisit(policy) if args.no_revisit else policy.act
    result = run_trials(act, task, trials=args.trials, seed=args.seed)
    name = (f"{policy.meta.get('exploration', '?')} {task.dof}-DoF"
            + (" no-revisit" if args.no_revisit else ""))
    print(format_table({name: result},
                       f"{args.model}: {args.trials} trials, seed {args.seed}, "
                       f"threshold {100 * task.delta:.0f} cm x {task.success_steps} steps"))
    paper = PAPER_TABLE2.get(policy.meta.get("exploration", ""), {}).get(task.dof)
    if paper:
        print(f"{'paper (Table 2)':<{max(22, len(name) + 2)}}"
              f"{paper[2]:>10.2f}{paper[0]:>10.2f}{paper[1]:>9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": str(args.model), "seed": args.seed, **result.summary()}, f, indent=2)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser(
        "control", help="evaluate a control checkpoint with ground-truth Omega (Table 2)",
        description="Run the paper's evaluation protocol (section 5.2) on a control network: "
                    "uniform targets and start configurations, success rate, median and third "
                    "quartile of the final distance in cm and in 84x84 pixels.")
    p.add_argument("--model", required=True, help="path to a control checkpoint (.pt)")
    p.add_argument("--trials", type=int, default=400, help="number of trials (default: 400)")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help=f"trial seed (default: {EVAL_SEED})")
    p.add_argument("--dof", type=int, choices=(1, 2, 3), default=None,
                   help="fail unless the checkpoint is for this many DoF")
    p.add_argument("--max-steps", type=int, default=None, help="override the step limit per trial")
    p.add_argument("--tool", default=None, help="fail unless the checkpoint is for this tool point "
                   "(paper, electric_gripper_fingertips or metres); trials use the checkpoint's tool")
    p.add_argument("--no-revisit", action="store_true",
                   help="no-revisit rule of the ROS controller (reach_core.control.NoRevisit): "
                        "never move to a joint configuration the trial has already visited, which "
                        "breaks the greedy policy's loops; default: plain greedy")
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    p.set_defaults(func=_cmd_eval_control)
