"""``reach pipeline``: the full pipeline as stages (SIM perception | control, adaptation,
fine-tuning, Table 3), each a ``reach`` command, with resume and stage times.

The plan is a recipe (``recipes/pipeline.yaml``): which training recipes each stage runs and the
budgets.  The stages and what each needs:

=============== ========================================== ==================================
data            hifi training frames (unless --hifi-train)  --
sim             SIM perception (``reach train perception``) --
control_stage1  control, K-GPS DQN (CPU cores)              --
control         control stage 2 (success bonus)             control_stage1
adapt           P75 adaptation                              sim, data
finetune        EE2-FT (``reach train end2end``)            adapt, control
table3          Table 3 (``reach eval end2end``)            finetune
=============== ========================================== ==================================

A stage starts as soon as the stages it needs are done, so independent stages run side by side:
the SIM network on the GPU while the controller trains on the CPU cores and the hifi frames render;
the adaptation beside control stage 2.  Each stage logs to ``OUT/logs/STAGE.log``; its wall time
goes to ``OUT/pipeline_times.json``.  ``--resume`` skips the stages whose products are in
``--out`` (keeping their recorded times); ``--stop-after STAGE`` runs that stage and what it needs
only (a lent machine's calls are limited in time: run the pipeline in parts).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from .configs import recipe_path

#: the plan's settings that are flags of ``reach pipeline`` too
SETTINGS = ("data_n", "data_seed", "sim_budget", "control_budget", "control_split", "control_threads",
            "adapt_budget", "ft_steps", "ft_threads", "trials", "hifi_trials", "threads")


@dataclasses.dataclass
class Stage:
    """One stage: its ``reach`` command line, the stages it needs and the files that mark it done."""

    key: str
    name: str
    argv: list
    needs: tuple = ()
    products: tuple = ()

    def done(self) -> bool:
        """Whether every product exists."""
        return all(Path(p).exists() for p in self.products)


def load_plan(config: str, tiny: bool, overrides: dict) -> dict:
    """The pipeline plan: the YAML recipe, its ``tiny`` values with ``tiny``, then ``overrides``."""
    import yaml

    plan = yaml.safe_load(recipe_path(config).read_text()) or {}
    tiny_plan = plan.pop("tiny", {}) or {}
    if tiny:
        plan = {**plan, **{k: v for k, v in tiny_plan.items() if k != "stages"}}
    missing = [k for k in (*SETTINGS, "stages") if k not in plan]
    if missing:
        raise ValueError(f"pipeline plan {config}: missing {', '.join(missing)}")
    plan.update({k: v for k, v in overrides.items() if v is not None})
    plan["overlays"] = tiny_plan.get("stages", {}) if tiny else {}
    return plan


def recipe_args(plan: dict, key: str, out: Path) -> list:
    """``--config`` of each recipe of stage ``key``, then its --tiny overlay (written to
    OUT/recipes/tiny_KEY.yaml)."""
    import yaml

    argv = []
    for name in plan["stages"][key]:
        argv += ["--config", str(recipe_path(name))]
    overlay = plan["overlays"].get(key)
    if overlay:
        path = out / "recipes" / f"tiny_{key}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(overlay, sort_keys=False))
        argv += ["--config", str(path)]
    return argv


def build_stages(plan: dict, out: Path, device: str, hifi_train: str | None) -> dict[str, Stage]:
    """The stages of the plan, keyed by name; see the module docstring."""
    hifi = Path(hifi_train) if hifi_train else out / "hifi_train"
    window = plan["control_budget"] or plan["sim_budget"]
    split = plan["control_split"]
    ft_threads = plan["ft_threads"] or min(8, os.cpu_count() or 1)
    ctl = ["train", "control", "--threads", str(plan["control_threads"]), "--force", "--no-progress"]
    if plan.get("control_vectorised"):   # the device-resident trainer (control_vec) on --device
        ctl += ["--vectorised", "--device", device]
        ctl += [] if device.startswith("cuda") else ["--no-cuda-graph"]   # CUDA graphs need a GPU
    stages = [
        Stage("data", "hifi data", None if hifi_train else
              ["data", "render", "--source", "hifi", "--n", str(plan["data_n"]), "--seed",
               str(plan["data_seed"]), "--out", str(hifi)], (), (hifi / "labels.csv",)),
        Stage("sim", "SIM perception", ["train", "perception", *recipe_args(plan, "sim", out),
                                        "--device", device,
                                        "--time-budget", f"{plan['sim_budget']:g}", "--out", str(out / "sim"),
                                        "--no-progress"], (), (out / "sim/model.pt",)),
        Stage("control_stage1", "control stage 1", ctl + [*recipe_args(plan, "control_stage1", out),
              "--time-budget", f"{split * window:g}", "--out", str(out / "control_stage1")], (),
              (out / "control_stage1/best.pt",)),
        Stage("control", "control stage 2 (CR)", ctl + [*recipe_args(plan, "control", out),
              "--init-from", str(out / "control_stage1/best.pt"),
              "--time-budget", f"{(1 - split) * window:g}",
              "--out", str(out / "control")], ("control_stage1",), (out / "control/best.pt",)),
        Stage("adapt", "adaptation (P75)", ["train", "perception", *recipe_args(plan, "adapt", out),
              "--adapt-from", str(out / "sim/model.pt"), "--real", str(hifi), "--device", device,
              "--time-budget", f"{plan['adapt_budget']:g}", "--out", str(out / "p75"), "--no-progress"],
              ("sim", "data"), (out / "p75/model.pt",)),
        Stage("finetune", "fine-tuning (EE2-FT)", ["train", "end2end", *recipe_args(plan, "finetune", out),
              "--perception", str(out / "p75/model.pt"), "--control", str(out / "control/best.pt"),
              "--real", str(hifi), "--device", device, "--threads", str(ft_threads),
              "--steps", str(plan["ft_steps"]), "--out", str(out / "ee2ft"), "--no-progress"]
              + ([] if plan["overlays"] else ["--eval-every", str(plan["ft_steps"])]),
              ("adapt", "control", "data"), (out / "ee2ft/model.pt",)),
        Stage("table3", "Table 3", ["eval", "end2end", "--no-revisit-odometry",
                                    "--threads", str(plan["threads"]),
              "--control", str(out / "control/best.pt"), "--sim-perception", str(out / "sim/model.pt"),
              "--adapted-perception", str(out / "p75/model.pt"),
              "--finetuned", f"EE2-FT={out / 'ee2ft/model.pt'}",
              "--trials", str(plan["trials"]), "--hifi-trials", str(plan["hifi_trials"]),
              "--json", str(out / "table3.json"), "--plot", str(out / "table3.png")],
              ("finetune", "sim", "adapt", "control"), (out / "table3.json",)),
    ]
    return {s.key: s for s in stages}


def wanted(stages: dict[str, Stage], stop_after: str | None) -> list[str]:
    """The stages to run: all, or ``stop_after`` and the stages it needs (transitively)."""
    if stop_after is None:
        return list(stages)
    if stop_after not in stages:
        raise ValueError(f"--stop-after: unknown stage {stop_after!r} (one of {', '.join(stages)})")
    keep, todo = set(), [stop_after]
    while todo:
        key = todo.pop()
        if key not in keep:
            keep.add(key)
            todo.extend(stages[key].needs)
    return [k for k in stages if k in keep]


def run_stage(stage: Stage, out: Path) -> int:
    """Run one stage's ``reach`` command, its output in OUT/logs/KEY.log; its exit code."""
    log_path = out / "logs" / f"{stage.key}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH")]))}
    with open(log_path, "w") as log:
        return subprocess.call([sys.executable, "-m", "reach_core.cli", *stage.argv],
                               stdout=log, stderr=subprocess.STDOUT, env=env)


class Schedule:
    """Runs the stages, each as soon as those it needs are done, and records their times."""

    def __init__(self, stages: dict[str, Stage], keys: list[str], out: Path, earlier: dict, resume: bool):
        self.stages, self.keys, self.out = stages, keys, out
        self.times: dict = {}
        self.done: set = set()
        self.failed: list = []
        self.t0 = time.perf_counter()
        for key in keys:
            stage = stages[key]
            if stage.argv is None or (resume and stage.done()):
                self.done.add(key)
                self.times[key] = earlier.get(key, "given") if stage.argv is None else \
                    earlier.get(key, "done before (time not recorded)")
                why = "given" if stage.argv is None else "done before"
                print(f"== {stage.name}: {why}, skipped", flush=True)

    def ready(self, running: dict) -> list[str]:
        """Stages not yet started whose needs are done."""
        started = self.done | set(running.values()) | {k for k, _ in self.failed}
        return [k for k in self.keys if k not in started
                and all(n in self.done or n not in self.keys for n in self.stages[k].needs)]

    def start(self, pool, key: str):
        """Submit one stage; prints its command line."""
        stage = self.stages[key]
        print(f"[pipeline {self.elapsed():.0f}s] start {stage.name}: reach {' '.join(map(str, stage.argv))}",
              flush=True)
        return pool.submit(_timed, run_stage, stage, self.out)

    def finish(self, key: str, code: int, seconds: float) -> None:
        """Record a stage's outcome."""
        stage = self.stages[key]
        if code == 0:
            self.done.add(key)
            self.times[key] = round(seconds, 1)
            print(f"[pipeline {self.elapsed():.0f}s] {stage.name} done in {seconds:.1f} s", flush=True)
        else:
            self.failed.append((key, code))
            self.times["failed"] = key
            log = self.out / "logs" / f"{key}.log"
            tail = log.read_text().splitlines()[-5:] if log.is_file() else []
            print(f"stage {stage.name!r} failed (exit {code}); OUT/logs/{key}.log ends:\n  "
                  + "\n  ".join(tail),
                  file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        """Seconds since the schedule began."""
        return time.perf_counter() - self.t0

    def run(self) -> dict:
        """Run to the end (after a failure, only the stages already running finish)."""
        running: dict = {}
        with ThreadPoolExecutor(max(1, len(self.keys))) as pool:
            while True:
                if not self.failed:
                    for key in self.ready(running):
                        running[self.start(pool, key)] = key
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    code, seconds = fut.result()
                    self.finish(running.pop(fut), code, seconds)
        return self.times


def _timed(fn, *args):
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0


def report(times: dict, stages: dict[str, Stage], wall: float, earlier: dict, label: str) -> dict:
    """The stage times, this call's wall time and the total over calls; printed and returned."""
    record = dict(times)
    record["this call"] = round(wall, 1)
    before = earlier.get("wall total")
    record["wall total"] = round(wall + (before if isinstance(before, (int, float)) else 0.0), 1)
    numeric = {k: v for k, v in times.items() if k in stages and isinstance(v, (int, float))}
    training = [v for k, v in numeric.items() if k not in ("data", "table3")]
    record["training stages (sum)"] = round(sum(training), 1)
    print(f"\npipeline stage times ({label}):")
    for key, value in record.items():
        name = stages[key].name if key in stages else key
        print(f"  {name:<30} {value}")
    return record


def pipeline(args) -> int:
    """``reach pipeline``."""
    out = Path(args.out)
    overrides = {k: getattr(args, k) for k in SETTINGS}
    try:
        plan = load_plan(args.config, args.tiny, overrides)
        device = "cpu" if args.tiny else args.device
        stages = build_stages(plan, out, device, args.hifi_train)
        keys = wanted(stages, args.stop_after)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    times_file = out / "pipeline_times.json"
    earlier = json.loads(times_file.read_text()) if args.resume and times_file.exists() else {}
    schedule = Schedule(stages, keys, out, earlier, args.resume)
    times = schedule.run()
    record = report(times, stages, schedule.elapsed(), earlier,
                    f"device {device}{', tiny' if args.tiny else ''}")
    times_file.write_text(json.dumps(record, indent=2) + "\n")
    return 1 if schedule.failed else 0


def add_cli(groups) -> None:
    """``reach pipeline``: the plan's settings as flags (default: the plan's values)."""
    p = groups.add_parser(
        "pipeline", help="the full pipeline: SIM perception | control, adaptation, fine-tuning, Table 3",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="pipeline", help="the pipeline plan (default recipes/pipeline.yaml)")
    p.add_argument("--out", default="runs/pipeline", help="pipeline folder (default runs/pipeline)")
    p.add_argument("--device", default="cpu", help="device of the perception and fine-tuning stages (cuda)")
    p.add_argument("--tiny", action="store_true",
                   help="the plan's tiny sizes on the CPU (a functional check)")
    p.add_argument("--resume", action="store_true", help="skip the stages whose products are in --out")
    p.add_argument("--stop-after", default=None, metavar="STAGE",
                   help="run this stage and the stages it needs only (data, sim, control_stage1, control, "
                        "adapt, finetune, table3)")
    p.add_argument("--hifi-train", default=None,
                   help="an existing hifi training set instead of rendering one (e.g. rendered on a CPU "
                        "machine: a GPU machine may lack MuJoCo's GL libraries)")
    for key in SETTINGS:
        kind = float if key.endswith(("budget", "split")) else int
        p.add_argument("--" + key.replace("_", "-"), type=kind, default=None,
                       help=f"the plan's {key} (see recipes/pipeline.yaml)")
    p.set_defaults(func=pipeline)
