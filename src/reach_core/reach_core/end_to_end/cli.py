"""The end-to-end commands: ``reach train end2end``, ``reach eval end2end`` (Table 3) and
``reach export end2end``.  Argparse wiring only."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import CheckpointError
from ..configs import add_config_args, resolve
from ..perception import DEPLOY_TTA_PATTERN, TTA_PATTERNS
from .evaluate import Observer, evaluate_rows, format_table3, plot_table3, set_tta
from .finetune import FinetuneConfig, _log, finetune
from .model import EndToEndModel, _load_module


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _cmd_train(args) -> int:
    from ..datasets import DatasetError
    argv = getattr(args, "argv", None)
    command = "reach " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        cfg = resolve(FinetuneConfig, args, command=command)
        finetune(cfg, progress=not args.no_progress)
    except (CheckpointError, DatasetError, ValueError, RuntimeError) as err:
        return _err(str(err).splitlines()[0] if isinstance(err, RuntimeError) else str(err))
    print(f"model: {Path(cfg.out) / 'model.pt'}  torchscript: {Path(cfg.out) / 'model.ts'}  "
          f"metrics: {Path(cfg.out) / 'metrics.json'}")
    return 0


def _eval_rows(args) -> tuple[dict, object]:
    """The rows of Table 3 ({name: EndToEndModel, or the ControlPolicy of CR}) and the controller."""
    rows = {}
    control = _load_module(args.control, "control", dof=args.dof)
    if args.sim_perception:
        rows["EE1 (SIM+CR)"] = EndToEndModel.from_modules(args.sim_perception, args.control, args.dof)
    if args.adapted_perception:
        rows["EE2 (P75+CR)"] = EndToEndModel.from_modules(args.adapted_perception, args.control, args.dof)
    for spec in args.finetuned or []:
        name, _, path = spec.partition("=") if "=" in spec else ("EE2-FT", "", spec)
        rows[name] = EndToEndModel.load(path, dof=args.dof)
    set_tta(rows, args.tta, log=_log, pattern=args.tta_pattern)
    if not args.no_cr:
        rows["CR (ground truth)"] = control
    return rows, control


def _run_table(args, rows: dict, task) -> tuple[dict, dict]:
    """Every (domain, scene) asked for: {(scenario, row): EvalResult} and the timings."""
    results, timing = {}, {}
    for domain, trials in (("sim", args.trials), ("hifi", args.hifi_trials)):
        if trials <= 0:
            continue
        for scene in args.scene or ["normal"]:
            scen = domain if scene == "normal" else f"{domain}/{scene}"
            use = {k: v for k, v in rows.items() if scene == "normal" or not k.startswith("CR")}
            res = evaluate_rows(use, task, trials, args.seed, domain, scene, log=_log,
                                no_revisit=args.no_revisit or args.no_revisit_odometry,
                                odometry=args.no_revisit_odometry)
            for name, (r, secs, obs) in res.items():
                results[(scen, name)] = r
                timing[f"{scen} {name}"] = {"seconds": round(secs, 1), "frames": obs.frames,
                                            "render_seconds": round(obs.render_s, 1)}
                if scene == "two-targets" and obs.decoy_distance is not None:
                    dd = obs.decoy_distance
                    timing[f"{scen} {name}"]["at_decoy_fraction"] = float(np.mean(dd <= task.delta))
    return results, timing


def _table_title(args, task) -> str:
    rule = ("; controllers with the no-revisit rule (odometry)" if args.no_revisit_odometry else
            "; controllers with the no-revisit rule" if args.no_revisit else "")
    tta = (f"; perception with test-time augmentation (the {args.tta_pattern} of shifts up to "
           f"{args.tta} px)" if args.tta else "")
    return (f"End-to-end reaching (Table 3): seed {args.seed}, {args.trials} sim trials, "
            f"{args.hifi_trials} hifi trials ('hifi' = the higher-fidelity domain, the paper's 'Real'), "
            f"{task.dof}-DoF, threshold {100 * task.delta:.0f} cm x {task.success_steps} steps; "
            f"distances in cm and 84x84 px" + tta + rule)


def _cmd_eval(args) -> int:
    torch.set_num_threads(max(1, args.threads))
    try:
        rows, control = _eval_rows(args)
    except (CheckpointError, ValueError) as err:
        return _err(str(err))
    task = control.task
    results, timing = _run_table(args, rows, task)
    print(_table_title(args, task))
    print(format_table3(results, paper=not args.no_paper))
    for k, v in timing.items():
        if "at_decoy_fraction" in v:
            print(f"  {k}: final configuration within delta of the decoy target in "
                  f"{100 * v['at_decoy_fraction']:.1f} % of trials")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"seed": args.seed, "rows": {f"{s} | {n}": r.summary() for (s, n), r in results.items()},
             "timing": timing, "command": "reach " + " ".join(map(shlex.quote, getattr(args, "argv", [])))},
            indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        plot_table3(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cmd_export(args) -> int:
    try:
        if args.model:
            model = EndToEndModel.load(args.model, dof=args.dof)
        elif args.perception and args.control:
            model = EndToEndModel.from_modules(args.perception, args.control, args.dof)
        else:
            return _err("give --model (a combined checkpoint) or --perception and --control")
    except CheckpointError as err:
        return _err(str(err))
    from .export import export
    try:
        path = export(model, args.out, tta=args.tta, pattern=args.tta_pattern)
    except (ValueError, RuntimeError) as err:
        return _err(str(err).splitlines()[0])
    print(f"wrote {path}")
    return 0


def add_train_cli(sub) -> None:
    """``reach train end2end``: one flag per :class:`FinetuneConfig` field, ``--config RECIPE``."""
    p = sub.add_parser(
        "end2end", help="weighted end-to-end fine-tuning of perception + control (Eq. 4)",
        description="Fine-tune the combined network (perception + control) end to end: control with "
                    "the task loss Lq, perception with beta*Lp + (1-beta)*Lq_BN (paper Eq. 4); or "
                    "--naive (Lq only). Settings come from the defaults, then the --config recipes, "
                    "then the flags given. Writes config.json, model.pt (combined checkpoint), model.ts "
                    "(TorchScript), best.pt, progress.csv, metrics.json, loss_curves.png into --out.")
    add_config_args(p, FinetuneConfig)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def add_eval_cli(sub) -> None:
    from ..evaluation import EVAL_SEED
    m = "src/reach_core/reach_core/models"
    p = sub.add_parser(
        "end2end", help="Table 3: EE1, EE2, EE2-FT and CR in the simulator and the hifi domain",
        description="Evaluate combined networks end to end (renderer -> perception -> control) "
                    "and the CR baseline (ground-truth Omega): median and Q3 distance (cm, 84x84 px), "
                    "R-bar and success, in the simulator and in the higher-fidelity domain; prints "
                    "Table 3 and writes a PNG. --scene adds robustness checks (occluders, no target, "
                    "two targets).")
    p.add_argument("--control", default=f"{m}/control_dof3.pt", help="control checkpoint (CR)")
    p.add_argument("--sim-perception", default=f"{m}/perception_sim.pt",
                   help="SIM perception (EE1; a combined checkpoint gives its perception); '' to skip")
    p.add_argument("--adapted-perception", default=f"{m}/perception_adapted.pt",
                   help="P75 perception (EE2; a combined checkpoint gives its perception); '' to skip")
    p.add_argument("--finetuned", action="append", help="combined checkpoint(s), NAME=path (EE2-FT)")
    p.add_argument("--dof", type=int, choices=(1, 2, 3), default=None)
    p.add_argument("--trials", type=int, default=400, help="simulator trials (default 400)")
    p.add_argument("--hifi-trials", type=int, default=20,
                   help="higher-fidelity trials (default 20, as the paper's real)")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help=f"trial seed (default {EVAL_SEED})")
    p.add_argument("--scene", action="append", choices=Observer.SCENES,
                   help="what the camera sees (repeatable; default normal)")
    p.add_argument("--no-cr", action="store_true", help="skip the CR baseline row")
    p.add_argument("--no-revisit", action="store_true",
                   help="run every controller with the ROS controller's no-revisit rule (its default "
                        "there); without it, the plain greedy policy, as in the paper")
    p.add_argument("--no-revisit-odometry", action="store_true",
                   help="the no-revisit rule on the commanded configurations (the first estimate "
                        "plus the moves commanded), as the ROS controller runs it by default")
    p.add_argument("--tta", type=int, default=1,
                   help="perception with test-time augmentation: the median over the image shifted "
                        "by up to this many pixels (0..3; default 1, as the perception node; 0: "
                        "off), for networks trained with camera shifts (not the SIM network)")
    p.add_argument("--tta-pattern", choices=TTA_PATTERNS, default=DEPLOY_TTA_PATTERN,
                   help="the shifted copies: square, (2 tta + 1)^2, cross, the image and its "
                        "shifts along each axis, 4 tta + 1, or ring, the cross without the image, "
                        f"4 tta (default {DEPLOY_TTA_PATTERN}, as the perception node)")
    p.add_argument("--no-paper", action="store_true", help="do not print the paper's rows")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--plot", default=None, help="write the PNG here")
    p.set_defaults(func=_cmd_eval)


def add_export_cli(sub) -> None:
    p = sub.add_parser("end2end", help="export a combined network as one ONNX file (or TorchScript)",
                       description="Write the combined network (image -> Q-values, Omega_hat, greedy "
                                   "action) as one ONNX file that ONNX Runtime runs without torch or reach "
                                   "(--out NAME.onnx, with test-time augmentation in the graph), or as a "
                                   "TorchScript file (--out NAME.ts; deprecated by PyTorch, no "
                                   "augmentation).")
    p.add_argument("--model", default=None, help="combined checkpoint (reach train end2end's model.pt)")
    p.add_argument("--perception", default=None, help="or: perception checkpoint ...")
    p.add_argument("--control", default=None, help="... and control checkpoint")
    p.add_argument("--dof", type=int, choices=(1, 2, 3), default=None)
    p.add_argument("--out", required=True, help="file to write: .onnx (ONNX) or .ts (TorchScript)")
    p.add_argument("--tta", type=int, default=1,
                   help="ONNX: test-time augmentation in the graph, shifts up to this many pixels (0..3; "
                        "default 1, as the perception node; 0 for a network trained without camera shifts)")
    p.add_argument("--tta-pattern", choices=TTA_PATTERNS, default=DEPLOY_TTA_PATTERN,
                   help="ONNX: the shifts of the augmentation: square, (2 tta + 1)^2 copies, "
                        "cross, the image and its shifts along each axis, 4 tta + 1 copies, or "
                        "ring, the cross without the image itself, 4 tta "
                        f"(default {DEPLOY_TTA_PATTERN}, as the perception node)")
    p.set_defaults(func=_cmd_export)
