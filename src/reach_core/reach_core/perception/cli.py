"""The perception commands: ``reach train perception`` and ``reach eval perception``.

Argparse wiring only: the flags map onto :class:`TrainConfig` fields (``reach train``) and onto
:func:`evaluate_model` / :func:`print_table` / :func:`plot_errors` (``reach eval``).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from ..checkpoints import CheckpointError
from ..configs import add_config_args, resolve
from ..runs import Run
from .config import SIM_TEST_SEED, TrainConfig
from .evaluate import evaluate_model, plot_errors, print_table
from .model import PerceptionModel
from .train import train


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: the defaults, then the ``--config`` recipes, then the flags given; or
    with ``--resume`` the run folder's config.json with ``--steps``, ``--time-budget`` and
    ``--device`` applied."""
    if args.resume:
        cfg_path = Path(args.out or TrainConfig.out) / Run.CONFIG
        if not cfg_path.is_file():
            raise CheckpointError(f"--resume: no {cfg_path}")
        cfg = TrainConfig(**json.loads(cfg_path.read_text()))
        for name in ("steps", "time_budget", "device"):
            if getattr(args, name) is not None:
                setattr(cfg, name, getattr(args, name))
    else:
        cfg = resolve(TrainConfig, args)
    argv = getattr(args, "argv", None)
    cfg.command = "reach " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    return cfg


def _cmd_train(args: argparse.Namespace) -> int:
    from ..datasets import DatasetError

    try:
        cfg = _config_from_args(args)
        if cfg.device == "cuda" and not torch.cuda.is_available():
            print("error: --device cuda, but this torch sees no CUDA GPU", file=sys.stderr)
            return 2
        if args.nproc > 1:
            _train_processes(args.nproc, cfg, args)
        else:
            train(cfg, resume=args.resume, progress=not args.no_progress)
    except (CheckpointError, DatasetError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _train_processes(nproc: int, cfg: TrainConfig, args: argparse.Namespace) -> None:
    """``--nproc N``: N training processes on this machine (DDP, as torchrun would start them)."""
    import torch.multiprocessing as mp

    from .. import distributed
    distributed.check_batch(cfg.batch, nproc)
    if cfg.device.startswith("cuda") and torch.cuda.device_count() < nproc:
        raise ValueError(f"--nproc {nproc} on CUDA needs {nproc} GPUs, this torch sees "
                         f"{torch.cuda.device_count()}")
    try:
        distributed.launch(nproc, train, cfg, args.resume, not args.no_progress,
                           threads=0 if cfg.device.startswith("cuda") else 1)
    except mp.ProcessException as err:
        raise RuntimeError(f"a training process failed: {err}") from None


def _models_tool(models: dict) -> str:
    """The one tool point the models were trained for (a ValueError naming two that differ)."""
    from ..kinematics import check_tool

    names = list(models)
    for name in names[1:]:
        check_tool(models[names[0]].tool, models[name].tool, f"model {name}")
    return models[names[0]].tool if names else "paper"


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..datasets import DatasetError, load_dataset, sim_test_set

    try:
        from ..camera_model import load_camera
        calibration = load_camera(args.camera)
        models = {}
        for spec in args.model:
            name, _, path = spec.partition("=") if "=" in spec else (Path(spec).stem, "", spec)
            models[name] = PerceptionModel.load(path, tta=args.tta)
        tool = _models_tool(models)
        data = {}
        if args.sim_test:
            data["sim"] = sim_test_set(args.sim_test, args.sim_seed, tool=tool)
        for spec in args.dataset or []:
            name, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
            data[name] = load_dataset(path, seed=args.sim_seed, calibration=calibration, tool=tool)
    except (CheckpointError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not data:
        print("error: nothing to evaluate on (give --sim-test N and/or --dataset DIR)", file=sys.stderr)
        return 2
    results, all_errors = {}, {}
    for mname, model in models.items():
        metrics, errors = evaluate_model(model, data)
        results[mname] = metrics
        for dname, e in errors.items():
            all_errors[f"{mname} / {dname}"] = e
    print_table(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        plot_errors(all_errors, args.plot, "perception error e (Figure 4 style)")
        print(f"wrote {args.plot}")
    return 0


def add_train_cli(sub) -> None:
    """``reach train perception``: one flag per :class:`TrainConfig` field, ``--config RECIPE``."""
    p = sub.add_parser(
        "perception", help="train a perception network (SIM from scratch, or adapt with real images)",
        description="Train the perception network (84x84 grey image -> normalised Omega) on "
                    "simulator images rendered in memory (SIM), or adapt a trained network with "
                    "a fraction of real images in every mini-batch (P25-P100: --adapt-from "
                    "--real --real-fraction).  Settings come from the defaults, then the --config "
                    "recipes (reach_core/recipes/*.yaml), then the flags given.  Writes config.json "
                    "(the resolved settings), checkpoint.pt (resume), model.pt, progress.csv, "
                    "metrics.json and loss_curve.png into --out.")
    add_config_args(p, TrainConfig)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (optionally to new --steps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, default=1,
                   help="training processes on this machine, one per GPU with --device cuda, or gloo "
                        "CPU processes (DistributedDataParallel; --batch is the global batch, a "
                        "multiple of N); default 1. Under torchrun, leave it at 1 (docs/perception.md)")
    p.set_defaults(func=_cmd_train)


def add_eval_cli(sub) -> None:
    p = sub.add_parser(
        "perception", help="perception error e per dataset (Table 1) and a Figure 4 style plot",
        description="Evaluate perception networks: e = ||Omega_hat - Omega|| (mean, std) per "
                    "dataset as in Table 1, per-component errors (cm, 84x84 px, degrees), and a "
                    "box plot / histogram PNG.")
    p.add_argument("--model", action="append", required=True,
                   help="checkpoint, or NAME=checkpoint; repeat for several networks")
    p.add_argument("--sim-test", type=int, default=400,
                   help="simulator test images, rendered through the camera pipeline (default 400, "
                        "as in the paper; 0 for none)")
    p.add_argument("--sim-seed", type=int, default=SIM_TEST_SEED,
                   help=f"seed of the simulator test scenes (default {SIM_TEST_SEED})")
    p.add_argument("--dataset", action="append", help="dataset folder, or NAME=folder; repeatable")
    p.add_argument("--camera", default=None,
                   help="camera file (reach calibrate) of the camera that took the --dataset "
                        "frames: resampled into the virtual camera's first")
    p.add_argument("--tta", type=int, default=0,
                   help="test-time augmentation: the median over the image shifted by up to this "
                        "many pixels (0..3; default 0: off)")
    p.add_argument("--json", default=None, help="write the metrics to this JSON file")
    p.add_argument("--plot", default=None, help="write the box plot / histogram PNG here")
    p.set_defaults(func=_cmd_eval)
