"""Issue 4 figures: end-to-end reaching (Table 3).

Table 3 (default): EE1 (SIM + CR), EE2 (P75 + CR), EE2-FT (the committed fine-tuned network) and CR
(ground-truth Omega) in the simulator and the higher-fidelity domain, then the issue's targets:

    python bench/bench_end2end.py                       # 400 sim trials, 20 hifi trials
    python bench/bench_end2end.py --trials 100 --hifi-trials 10
    python bench/bench_end2end.py --odometry            # controllers as the ROS controller runs them
                                                        # (no-revisit rule on commanded configurations)
    # no test-time augmentation:
    python bench/bench_end2end.py --only EE2-FT --trials 0 --hifi-trials 60 --odometry --tta 0
    # test-time augmentation over the square of 9 shifted copies instead of the nodes' cross of 5
    # (docs/inference.md):
    python bench/bench_end2end.py --only EE2-FT --odometry --tta-pattern square

The full pipeline (training every stage, then Table 3) is ``reach pipeline`` (docs/pipeline.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reach_core.perception import DEPLOY_TTA_PATTERN, TTA_PATTERNS

MODELS = Path(__file__).resolve().parents[1] / "src/reach_core/reach_core/models"
TARGETS = {"sim_ee2ft_dmed_px": 0.8, "sim_ee2ft_success": 0.995, "hifi_ee2ft_dmed_px": 1.0}


def table3(args) -> dict:
    import torch
    from reach_core.end_to_end import EndToEndModel, evaluate_rows, format_table3, plot_table3, set_tta
    from reach_core.control import ControlPolicy

    torch.set_num_threads(args.threads)
    control = ControlPolicy.load(args.control)
    rows = {"EE1 (SIM+CR)": EndToEndModel.from_modules(args.sim_perception, args.control),
            "EE2 (P75+CR)": EndToEndModel.from_modules(args.adapted_perception, args.control)}
    if args.finetuned and Path(args.finetuned).is_file():
        rows["EE2-FT"] = EndToEndModel.load(args.finetuned)
    rows["CR (ground truth)"] = control
    if args.only:
        rows = {k: v for k, v in rows.items() if any(k.startswith(o) for o in args.only)}
        if not rows:
            raise SystemExit(f"error: --only {args.only}: no row starts with that (rows: EE1, EE2, "
                             f"EE2-FT, CR)")
    set_tta(rows, args.tta, log=lambda m: print(m, file=sys.stderr),   # EE2, EE2-FT: not EE1
            pattern=args.tta_pattern)
    results, secs = {}, {}
    for domain, n in (("sim", args.trials), ("hifi", args.hifi_trials)):
        if n > 0:
            for name, (r, s, _) in evaluate_rows(rows, control.task, n, args.seed, domain,
                                                 log=lambda m: print(m, file=sys.stderr),
                                                 no_revisit=args.no_revisit or args.odometry,
                                                 odometry=args.odometry).items():
                results[(domain, name)] = r
                secs[f"{domain} {name}"] = round(s, 1)
    print(format_table3(results))
    ft = {k[0]: r for k, r in results.items() if k[1] == "EE2-FT"}
    print("\nissue 4 figures (device: cpu, threads %d%s%s)" % (
        args.threads,
        f", perception trained with camera shifts with test-time augmentation (up to {args.tta} px,"
        f" {args.tta_pattern})"
        if args.tta else "",
        ", controllers with the no-revisit rule on commanded configurations" if args.odometry
        else ", controllers with the no-revisit rule" if args.no_revisit else ", greedy controllers"))
    if "sim" in ft:
        print(f"  sim EE2-FT d_med {ft['sim'].d_med_px:.2f} px (target <= {TARGETS['sim_ee2ft_dmed_px']}), "
              f"success {100 * ft['sim'].success_rate:.2f} % "
              f"(target >= {100 * TARGETS['sim_ee2ft_success']})")
    if "hifi" in ft:
        print(f"  hifi EE2-FT d_med {ft['hifi'].d_med_px:.2f} px (target <= {TARGETS['hifi_ee2ft_dmed_px']})")
    for (dom, name), r in results.items():
        print(f"  R-bar {dom:<5} {name:<20} {r.mean_return:.3f}")
    out = {"rows": {f"{d} | {n}": r.summary() for (d, n), r in results.items()}, "seconds": secs,
           "trials": args.trials, "hifi_trials": args.hifi_trials, "seed": args.seed,
           "no_revisit": args.no_revisit or args.odometry, "odometry": args.odometry,
           "tta": args.tta, "tta_pattern": args.tta_pattern, "only": args.only}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if args.plot:
        plot_table3(results, args.plot)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--control", default=str(MODELS / "control_dof3.pt"))
    p.add_argument("--sim-perception", default=str(MODELS / "perception_sim.pt"))
    p.add_argument("--adapted-perception", default=str(MODELS / "perception_adapted.pt"))
    p.add_argument("--finetuned", default=str(MODELS / "end2end_ee2ft.pt"))
    p.add_argument("--trials", type=int, default=400)
    p.add_argument("--hifi-trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=2017)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-revisit", action="store_true",
                   help="controllers with the ROS controller's no-revisit rule (its default there)")
    p.add_argument("--odometry", action="store_true",
                   help="the no-revisit rule on commanded configurations (the ROS controller's default)")
    p.add_argument("--tta", type=int, default=1,
                   help="perception with test-time augmentation: the median over the image shifted "
                        "by up to this many pixels (default 1, as the perception node; 0: off), for "
                        "networks trained with camera shifts (not the SIM network)")
    p.add_argument("--tta-pattern", choices=TTA_PATTERNS, default=DEPLOY_TTA_PATTERN,
                   help="the shifted copies: square (every shift up to --tta px) or cross (the image "
                        "and its shifts along each axis: 5 copies for --tta 1); default "
                        f"{DEPLOY_TTA_PATTERN}, as the perception node")
    p.add_argument("--only", action="append", default=None, metavar="ROW",
                   help="evaluate only the rows whose name starts with this (repeatable): EE1, "
                        "EE2 (also matches EE2-FT), EE2-FT, CR")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=None)
    args = p.parse_args()
    table3(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
