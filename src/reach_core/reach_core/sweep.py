"""``reach sweep``: variants of one training command side by side, then a summary of their metrics.

A sweep is one ``reach train perception|control|end2end`` command (its ``--config`` recipes) and
the settings that vary (``--vary lr=1e-4,3e-4 --vary real_fraction=0.5,0.75``: every combination
is a variant).  Each variant is one run folder ``OUT/NAME`` holding ``variant.yaml`` (its settings,
a recipe read after the others) and ``train.log``; ``--parallel`` variants run at once, each a
process of its own, spread over ``--devices`` round-robin (any number of GPUs, or ``cpu``).  At the
end the metrics.json of every run are gathered into ``OUT/summary.json`` and printed as one table;
with ``--eval-dataset`` (perception) every trained network is also evaluated on those datasets
(``reach eval perception``: ``OUT/eval.json`` and ``OUT/perception_errors.png``).  A variant whose
metrics.json exists is not run again (``--force`` runs it anew).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .configs import _base_type, _truth, load_recipe, recipe_path

#: the metrics shown in the table, per command (summary.json holds them all)
COLUMNS = {"perception": ["final.e_sim", "final.e_real_val", "final.e_real", "steps", "images_per_s",
                          "train_seconds"],
           "control": ["final_success_rate", "best_success_rate", "steps", "env_steps_per_s", "elapsed_s"],
           "end2end": ["final.success_rate", "final.d_med_px", "steps", "train_seconds"]}


def config_class(command: str):
    """The settings dataclass of ``reach train COMMAND``."""
    if command == "perception":
        from .perception import TrainConfig
        return TrainConfig
    if command == "control":
        from .control_training import TrainConfig
        return TrainConfig
    if command == "end2end":
        from .end_to_end import FinetuneConfig
        return FinetuneConfig
    raise ValueError(f"unknown training command {command!r} (perception, control or end2end)")


def guess_command(recipes: list[str]) -> str:
    """The training command whose settings hold every key of the recipes (the first that does)."""
    for command in ("perception", "control", "end2end"):
        try:
            for name in recipes:
                load_recipe(name, config_class(command))
            return command
        except ValueError:
            continue
    raise ValueError(f"no training command takes every setting of {', '.join(recipes)}: give --train")


def parse_value(cls, field: str, text: str):
    """``text`` as the type of ``cls.field`` (``1e-4`` -> 0.0001 for a float field)."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    if field not in names:
        raise ValueError(f"--vary: {cls.__name__} has no setting {field!r}")
    kind = _base_type(typing.get_type_hints(cls)[field])
    if text.lower() in ("none", "null") and names[field].default is None:
        return None
    if kind is bool:
        return _truth(text)
    if kind is tuple:
        return [int(v) for v in text.split()]
    try:
        return kind(text) if kind in (int, float, str) else text
    except ValueError:
        raise ValueError(f"--vary {field}: {text!r} is not a {kind.__name__}") from None


def parse_vary(cls, specs: list[str]) -> dict[str, list]:
    """``["lr=1e-4,3e-4", ...]`` -> ``{"lr": [0.0001, 0.0003], ...}`` (dashes or underscores)."""
    vary = {}
    for spec in specs:
        field, sep, values = spec.partition("=")
        field = field.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ValueError(f"--vary {spec!r}: expected FIELD=VALUE[,VALUE...]")
        vary[field] = [parse_value(cls, field, v.strip()) for v in values.split(",")]
    return vary


def variant_name(values: dict) -> str:
    """A folder name from a variant's values: ``{"lr": 1e-4, "seed": 1}`` -> ``lr1e-04_seed1``."""
    def show(v):
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, (list, tuple)):
            return "x".join(map(str, v))
        return str(v)
    parts = [f"{k}{show(v)}" for k, v in values.items()]
    name = "_".join(parts) or "base"
    return "".join(c if c.isalnum() or c in "._-+" else "-" for c in name)


def variants(vary: dict[str, list], fixed: dict, devices: list[str]) -> list[dict]:
    """Every combination of the varied values: ``{"name", "values", "settings", "device"}``, the
    devices given round-robin."""
    keys = list(vary)
    out = []
    for i, combo in enumerate(itertools.product(*(vary[k] for k in keys))):
        values = dict(zip(keys, combo))
        device = devices[i % len(devices)] if devices else None
        settings = {**fixed, **values, **({"device": device} if device else {})}
        out.append({"name": variant_name(values), "values": values, "settings": settings, "device": device})
    return out


def train_command(command: str, recipes: list[str], run_dir: Path, extra: list[str]) -> list[str]:
    """The ``reach train`` command line of one variant (its variant.yaml read last of the recipes)."""
    cmd = [sys.executable, "-m", "reach_core.cli", "train", command]
    for r in recipes:
        cmd += ["--config", str(r)]
    return cmd + ["--config", str(run_dir / "variant.yaml"), "--out", str(run_dir), "--no-progress", *extra]


def run_variant(spec: dict, command: str, recipes: list[str], out: Path, extra: list[str],
                timeout: float | None, force: bool) -> dict:
    """Write variant.yaml and run the training to its end (or ``timeout`` s); the outcome row."""
    import yaml

    run_dir = out / spec["name"]
    if (run_dir / "metrics.json").is_file() and not force:
        return {**spec, "status": "done before", "seconds": None}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "variant.yaml").write_text(yaml.safe_dump(spec["settings"], sort_keys=False))
    cmd = train_command(command, recipes, run_dir, extra + (["--force"] if command == "control" else []))
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    with open(run_dir / "train.log", "w") as log:
        try:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    status = "ok" if code == 0 else f"failed ({code})"
    print(f"[sweep] {spec['name']}: {status} in {time.perf_counter() - t0:.0f} s", flush=True)
    return {**spec, "status": status, "seconds": round(time.perf_counter() - t0, 1)}


def flatten(metrics: dict, prefix: str = "") -> dict:
    """The scalar metrics of a metrics.json, nested keys joined with dots (lists left out)."""
    flat = {}
    for key, value in metrics.items():
        if key in ("config", "command"):
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[prefix + key] = value
    return flat


def read_metrics(run_dir: Path) -> dict:
    """The flattened metrics.json of a run ({} if it has none); the last evaluation of a
    fine-tuning (``eval_history``) counts as its ``final``."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    flat = flatten(metrics)
    history = metrics.get("eval_history")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        flat.update(flatten(history[-1], "final."))
    return flat


def summarize(rows: list[dict], out: Path, command: str, columns: list[str] | None = None) -> dict:
    """summary.json (each variant's values, status, seconds and every scalar metric) and the table."""
    runs = []
    for row in rows:
        runs.append({"name": row["name"], "values": row["values"], "device": row["device"],
                     "status": row["status"], "seconds": row["seconds"],
                     "metrics": read_metrics(out / row["name"])})
    summary = {"command": command, "runs": runs}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(format_table(runs, columns or COLUMNS[command]))
    return summary


def format_table(runs: list[dict], columns: list[str]) -> str:
    """One line per run: its varied values, status, then the columns that any run has."""
    varied = list(dict.fromkeys(k for r in runs for k in r["values"]))
    shown = [c for c in columns if any(c in r["metrics"] for r in runs)]
    head = ["run", *varied, "status", *shown]
    lines = [[r["name"], *[_cell(r["values"].get(k)) for k in varied], r["status"],
              *[_cell(r["metrics"].get(c)) for c in shown]] for r in runs]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*line) for line in [head, *lines])


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def evaluate_perception(rows: list[dict], out: Path, datasets: list[str], sim_test: int) -> int:
    """``reach eval perception`` of every run's model.pt on ``datasets`` (NAME=DIR) and
    ``sim_test`` simulator images: OUT/eval.json and OUT/perception_errors.png."""
    from .cli import main as reach
    models = [f"{r['name']}={out / r['name'] / 'model.pt'}" for r in rows
              if (out / r["name"] / "model.pt").is_file()]
    if not models:
        print("[sweep] no model to evaluate", file=sys.stderr)
        return 1
    argv = ["eval", "perception", "--sim-test", str(sim_test), "--json", str(out / "eval.json"),
            "--plot", str(out / "perception_errors.png")]
    for m in models:
        argv += ["--model", m]
    for d in datasets:
        argv += ["--dataset", d]
    return reach(argv)


def sweep(args) -> int:
    """``reach sweep``: run the variants, then summarize (and evaluate) them."""
    try:
        recipes = [str(recipe_path(r)) for r in args.config or []]
        command = args.train or guess_command(recipes)
        cls = config_class(command)
        for name in recipes:
            load_recipe(name, cls)           # a bad recipe is one clear error before any run
        vary = parse_vary(cls, args.vary or [])
        fixed = {k: v for k, vals in parse_vary(cls, args.set or []).items() for v in vals[-1:]}
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    devices = [d.strip() for d in (args.devices or "").split(",") if d.strip()]
    specs = variants(vary, fixed, devices)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[sweep] reach train {command}: {len(specs)} variants, {args.parallel} at a time"
          + (f" on {', '.join(devices)}" if devices else ""), flush=True)
    if args.dry_run:
        for s in specs:
            print(" ".join(train_command(command, recipes, out / s["name"], args.train_args or [])),
                  "#", s["settings"])
        return 0
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        rows = list(pool.map(lambda s: run_variant(s, command, recipes, out, args.train_args or [],
                                                   args.timeout, args.force), specs))
    summarize(rows, out, command, args.metrics.split(",") if args.metrics else None)
    code = 0 if all(r["status"] in ("ok", "done before") for r in rows) else 1
    if args.eval_dataset or args.eval_sim:
        if command != "perception":
            print("[sweep] --eval-dataset/--eval-sim evaluate perception networks only", file=sys.stderr)
            return 2
        code = evaluate_perception(rows, out, args.eval_dataset or [], args.eval_sim) or code
    return code


def add_cli(groups) -> None:
    """``reach sweep``."""
    p = groups.add_parser(
        "sweep", help="run variants of one training command side by side, then summarize them",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", choices=("perception", "control", "end2end"), default=None,
                   help="the training command (default: the one whose settings the recipes hold)")
    p.add_argument("--config", action="append", metavar="RECIPE", help="recipe(s) of every variant")
    p.add_argument("--vary", action="append", metavar="FIELD=V1,V2",
                   help="a setting and its values (repeatable: every combination is a variant)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="a setting of every variant (repeatable; after the recipes)")
    p.add_argument("--out", required=True, help="sweep folder: one run folder per variant, summary.json")
    p.add_argument("--parallel", type=int, default=2, help="variants running at once (default 2)")
    p.add_argument("--devices", default=None,
                   help="comma-separated devices given to the variants round-robin (cuda:0,cuda:1; cpu); "
                        "default: the recipes' device")
    p.add_argument("--timeout", type=float, default=None, help="seconds a variant may run (then stopped)")
    p.add_argument("--force", action="store_true", help="run again the variants that have metrics.json")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metrics for the table (dotted: final.e_sim); summary.json has all")
    p.add_argument("--eval-dataset", action="append", metavar="NAME=DIR",
                   help="perception: evaluate every network on this dataset at the end (repeatable)")
    p.add_argument("--eval-sim", type=int, default=0,
                   help="perception: simulator test images of that evaluation (default 0)")
    p.add_argument("--dry-run", action="store_true", help="print the variants' commands, run nothing")
    p.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="after --: flags given to every training command (e.g. -- --real DIR)")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args) -> int:
    if args.train_args and args.train_args[0] == "--":
        args.train_args = args.train_args[1:]
    return sweep(args)
