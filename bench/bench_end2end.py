"""Issue 4 figures: end-to-end reaching (Table 3) and the full pipeline's wall-clock time.

Table 3 (default): EE1 (SIM + CR), EE2 (P75 + CR), EE2-FT (the committed fine-tuned network) and CR
(ground-truth Omega) in the simulator and the higher-fidelity domain, then the issue's targets:

    python bench/bench_end2end.py                       # 400 sim trials, 20 hifi trials
    python bench/bench_end2end.py --trials 100 --hifi-trials 10
    python bench/bench_end2end.py --odometry            # controllers as the ROS controller runs them
                                                        # (no-revisit rule on commanded configurations)
    # no test-time augmentation:
    python bench/bench_end2end.py --only EE2-FT --trials 0 --hifi-trials 60 --odometry --tta 0

Full pipeline (SIM perception -> adaptation -> control -> fine-tuning -> Table 3), one command,
each stage timed (meant for one GPU: ``--device cuda``; ``--tiny`` runs it in about a minute on a
CPU to check that it works, with figures that mean nothing):

    python bench/bench_end2end.py --pipeline --device cuda --out /tmp/pipeline
    python bench/bench_end2end.py --pipeline --tiny --out /tmp/pipeline_tiny

A pipeline can run in parts (a lent machine limits each call to 10 minutes): ``--stop-after
STAGE`` ends it after a stage (data, sim, adapt, finetune, table3) and ``--resume`` skips the
stages whose products are already in ``--out``, keeping their recorded times:

    python bench/bench_end2end.py --pipeline --device cuda --out P --stop-after sim
    python bench/bench_end2end.py --pipeline --device cuda --out P --resume --stop-after finetune
    python bench/bench_end2end.py --pipeline --out P --resume          # Table 3, e.g. on a CPU machine
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    set_tta(rows, args.tta, log=lambda m: print(m, file=sys.stderr))   # EE2, EE2-FT: not EE1
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
        f", perception trained with camera shifts with test-time augmentation (up to {args.tta} px)"
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
           "tta": args.tta, "only": args.only}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if args.plot:
        plot_table3(results, args.plot)
    return out


def pipeline(args) -> dict:
    """SIM perception, adaptation, control, fine-tuning and Table 3, each a ``reach`` command."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev, tiny = args.device, args.tiny
    py = [sys.executable, "-m", "reach_core.cli"]
    hifi = Path(args.hifi_train) if args.hifi_train else out / "hifi_train"
    # simulator images rendered on the training device (--online), half of them randomised
    online = ["--online", "--randomize", "0.5", "--supersample", "1" if tiny else "2"] + (
        ["--online-pool", "16", "--online-refresh", "4"] if tiny else [])
    # the control network trains on the CPU cores (a small MLP: faster there than on a GPU),
    # side by side with the SIM perception network on the GPU, in the shipped controller's two
    # stages (control_dof3.json): K-GPS DQN until 98.5 % success (at most 68 % of the window),
    # then a shorter run from it that rewards ending closer than the threshold (success bonus)
    window = args.control_budget or args.sim_budget
    ctl = ["train", "control", "--dof", "3", "--kinematic", "--dueling", "--n-step", "5",
           "--lr-final-fraction", "0.1", "--policy-ema", "0.001", "--hold-only-at-target",
           "--threads", str(args.control_threads), "--force", "--no-progress"] + (
        ["--eval-every", "1024", "--eval-trials", "4", "--hidden", "16"] if tiny else [])
    control = [ctl + ["--total-steps", "2048" if tiny else "600000", "--stop-success", "0.985",
                      *(["--learning-starts", "512"] if tiny else []),
                      "--time-budget", f"{0.68 * window:g}", "--out", str(out / "control_stage1")],
               ctl + ["--init-from", str(out / "control_stage1/best.pt"), "--success-bonus", "0.5",
                      "--eps-start", "0.3", "--lr", "2e-4", "--total-steps", "1024" if tiny else "150000",
                      "--learning-starts", "256" if tiny else "5000",
                      "--time-budget", f"{0.32 * window:g}", "--out", str(out / "control")]]
    # the shipped EE2-FT's setting (end2end_ee2ft.json): at the paper's beta 0.8 and the default
    # learning rates the task gradient, ~25x Lp here, pulls the bottleneck away from the true Omega
    ft_recipe = ["--beta", "0.99", "--lr-perception", "2e-5", "--lr-control", "2e-6", "--near-target", "0.25"]
    # (key, name, command or a tuple of commands run side by side (each a command or a list of
    # commands run one after the other), products that mark it done)
    stages = [
        ("data", "hifi data", None if args.hifi_train else
         ["data", "render", "--source", "hifi", "--n", "4" if tiny else "200", "--seed", "11",
          "--out", str(hifi)], [hifi / "labels.csv"]),
        ("sim", "SIM perception | control (CR)", (
            ["train", "perception", "--out", str(out / "sim"), "--arch", "spatial", "--device", dev,
             *online, "--steps", "4" if tiny else "100000000",
             "--time-budget", "0" if tiny else str(args.sim_budget),
             "--val-sim", "16" if tiny else "1000", "--eval-every", "2" if tiny else "2000", "--no-progress"]
            + (["--batch", "16", "--warmup", "1", "--keypoints", "4"] if tiny else []),
            control), [out / "sim/model.pt", out / "control/best.pt"]),
        ("adapt", "adaptation (P75)", ["train", "perception", "--out", str(out / "p75"),
                              "--adapt-from", str(out / "sim/model.pt"), "--real", str(hifi),
                              "--real-fraction", "0.75", "--virtual-targets", "2" if tiny else "20",
                              "--device", dev, *online,
                              "--steps", "4" if tiny else "100000000",
                              "--time-budget", "0" if tiny else str(args.adapt_budget),
                              "--lr", "3e-4", "--warmup", "1" if tiny else "100", "--noise", "0.01",
                              "--brightness", "0.1", "--real-clutter", "0.75", "--near-target", "0.25",
                              "--val-sim", "16" if tiny else "1000", "--eval-every", "2" if tiny else "1000",
                              "--no-progress"] + (["--batch", "16"] if tiny else []),
         [out / "p75/model.pt"]),
        ("finetune", "fine-tuning (EE2-FT)", ["train", "end2end", "--perception", str(out / "p75/model.pt"),
                                  "--control", str(out / "control/best.pt"), "--real", str(hifi),
                                  "--out", str(out / "ee2ft"), "--device", dev, "--no-progress",
                                  "--steps", "3" if tiny else str(args.ft_steps),
                                  "--threads", str(args.ft_threads),
                                  *ft_recipe]
         + (["--task-batch", "8", "--perception-batch", "8", "--learning-starts", "32", "--num-envs", "4",
             "--eval-every", "3", "--eval-trials", "2", "--sim-pool", "16", "--virtual-targets", "2"]
            if tiny else ["--eval-every", str(args.ft_steps), "--eval-trials", "100"]),
         [out / "ee2ft/model.pt"]),
        ("table3", "Table 3", ["eval", "end2end", "--no-revisit-odometry", "--threads", str(args.threads),
                               "--control", str(out / "control/best.pt"),
                     "--sim-perception", str(out / "sim/model.pt"),
                     "--adapted-perception", str(out / "p75/model.pt"),
                     "--finetuned", f"EE2-FT={out / 'ee2ft/model.pt'}",
                     "--trials", "4" if tiny else str(args.trials),
                     "--hifi-trials", "2" if tiny else str(args.hifi_trials),
                     "--json", str(out / "table3.json"), "--plot", str(out / "table3.png")],
         [out / "table3.json"]),
    ]
    keys = [k for k, *_ in stages]
    if args.stop_after and args.stop_after not in keys:
        raise SystemExit(f"--stop-after: unknown stage {args.stop_after!r} (one of {', '.join(keys)})")
    times_file = out / "pipeline_times.json"
    earlier = json.loads(times_file.read_text()) if args.resume and times_file.exists() else {}
    times = {}
    t_all = time.perf_counter()
    for key, name, cmds, products in stages:
        if cmds is None:
            continue
        if args.resume and all(Path(f).exists() for f in products):
            times[name] = earlier.get(name, "done before (time not recorded)")
            print(f"== {name}: done before ({times[name]} s), skipped", flush=True)
            if key == args.stop_after:
                break
            continue
        cmds = cmds if isinstance(cmds, tuple) else (cmds,)   # a tuple: side by side
        chains = [c if isinstance(c[0], list) else [c] for c in cmds]
        for chain in chains:
            print(f"== {name}: " + "  THEN  ".join(f"reach {' '.join(map(shlex.quote, c))}"
                                                  for c in chain), flush=True)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(chains)) as pool:
            codes = list(pool.map(lambda chain: _run_chain(py, chain), chains))
        times[name] = round(time.perf_counter() - t0, 1)
        if any(codes):
            print(f"stage {name!r} failed (exit {codes})", file=sys.stderr)
            times["failed"] = name
            break
        if key == args.stop_after:
            break
    times["this call"] = round(time.perf_counter() - t_all, 1)
    times["total"] = round(sum(v for k, v in times.items()
                               if k != "this call" and isinstance(v, (int, float))), 1)
    times["training stages"] = round(sum(v for k, v in times.items() if isinstance(v, (int, float))
                                         and k not in ("this call", "total", "Table 3", "hifi data")), 1)
    print(f"\npipeline stage times (device {dev}{', tiny' if tiny else ''}):")
    for k, v in times.items():
        print(f"  {k:<30} {v}")
    print("  target: training stages <= 1200 s on one GPU")
    times_file.write_text(json.dumps(times, indent=2) + "\n")
    return times


def _run_chain(py: list, chain: list) -> int:
    """Run the commands one after the other; the first that fails ends the chain (its exit code)."""
    for cmd in chain:
        code = subprocess.call(py + cmd)
        if code:
            return code
    return 0


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
    p.add_argument("--only", action="append", default=None, metavar="ROW",
                   help="evaluate only the rows whose name starts with this (repeatable): EE1, "
                        "EE2 (also matches EE2-FT), EE2-FT, CR")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=None)
    p.add_argument("--pipeline", action="store_true", help="run and time the full pipeline instead")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tiny", action="store_true", help="pipeline: tiny sizes (a functional check)")
    p.add_argument("--out", default="runs/pipeline")
    p.add_argument("--sim-budget", type=float, default=480, help="pipeline: SIM perception seconds")
    p.add_argument("--control-budget", type=float, default=0,
                   help="pipeline: control training seconds at most, its two stages together "
                        "(default: the SIM budget)")
    p.add_argument("--control-threads", type=int, default=2, help="pipeline: control training threads")
    p.add_argument("--adapt-budget", type=float, default=150, help="pipeline: P75 adaptation seconds")
    p.add_argument("--ft-steps", type=int, default=1200,
                   help="pipeline: end-to-end fine-tuning updates (the shipped EE2-FT's 1200)")
    p.add_argument("--ft-threads", type=int, default=min(8, os.cpu_count() or 1),
                   help="pipeline: CPU threads of the fine-tuning, which renders its task images on the "
                        "CPU (default: the cores, at most 8; `reach train end2end` alone uses 1)")
    p.add_argument("--resume", action="store_true",
                   help="pipeline: skip the stages whose products are already in --out")
    p.add_argument("--stop-after", default=None, metavar="STAGE",
                   help="pipeline: end after this stage (data, sim, adapt, finetune, table3)")
    p.add_argument("--hifi-train", default=None,
                   help="pipeline: an existing hifi training set instead of rendering one (e.g. "
                        "rendered on a CPU machine: a GPU machine may lack MuJoCo's GL libraries)")
    args = p.parse_args()
    if args.pipeline:
        times = pipeline(args)
        return 1 if "failed" in times else 0
    table3(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
