"""The perception commands: ``reach train perception`` and ``reach eval perception``.

Argparse wiring only: the flags map onto :class:`TrainConfig` fields (``reach train``) and onto
:func:`evaluate_model` / :func:`print_table` / :func:`plot_errors` (``reach eval``).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields
from pathlib import Path

import torch

from ..checkpoints import CheckpointError
from ..runs import Run
from .config import ADAPT_PARTS, SIM_TEST_SEED, TrainConfig
from .evaluate import evaluate_model, plot_errors, print_table
from .model import PerceptionModel
from .train import train


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: the flags given (the others at their defaults), or with ``--resume``
    the run folder's config.json with ``--steps``, ``--time-budget`` and ``--device`` applied."""
    if args.resume:
        cfg_path = Path(args.out or TrainConfig.out) / Run.CONFIG
        if not cfg_path.is_file():
            raise CheckpointError(f"--resume: no {cfg_path}")
        cfg = TrainConfig(**json.loads(cfg_path.read_text()))
        for name in ("steps", "time_budget", "device"):
            if getattr(args, name) is not None:
                setattr(cfg, name, getattr(args, name))
    else:
        names = {f.name for f in fields(TrainConfig)}
        cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
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
        train(cfg, resume=args.resume, progress=not args.no_progress)
    except (CheckpointError, DatasetError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..datasets import DatasetError, load_dataset, sim_test_set

    try:
        from ..camera_model import load_camera
        calibration = load_camera(args.camera)
        models = {}
        for spec in args.model:
            name, _, path = spec.partition("=") if "=" in spec else (Path(spec).stem, "", spec)
            models[name] = PerceptionModel.load(path, tta=args.tta)
        data = {}
        if args.sim_test:
            data["sim"] = sim_test_set(args.sim_test, args.sim_seed)
        for spec in args.dataset or []:
            name, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
            data[name] = load_dataset(path, seed=args.sim_seed, calibration=calibration)
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
    p = sub.add_parser(
        "perception", help="train a perception network (SIM from scratch, or adapt with real images)",
        description="Train the perception network (84x84 grey image -> normalised Omega) on "
                    "simulator images rendered in memory (SIM), or adapt a trained network with "
                    "a fraction of real images in every mini-batch (P25-P100: --adapt-from "
                    "--real --real-fraction).  Writes config.json, checkpoint.pt (resume), "
                    "model.pt, progress.csv, metrics.json and loss_curve.png into --out.")
    d = TrainConfig()
    a = p.add_argument
    a("--out", default=None, help="run folder (default: runs/perception)")
    a("--resume", action="store_true", help="continue the run in --out (optionally to new --steps)")
    a("--arch", choices=("paper", "spatial"), default=None,
      help="paper: 3 conv + 1 FC (default); spatial: spatial-softmax keypoints variant")
    a("--width", type=float, default=None, help="channel multiplier (default 1)")
    a("--batchnorm", action="store_true", default=None, help="batch normalisation after each conv")
    a("--fc-hidden", type=int, default=None, help="hidden FC units before the bottleneck (default 0)")
    a("--keypoints", type=int, default=None, help=f"spatial: keypoints (default {d.keypoints})")
    a("--steps", type=int, default=None, help=f"update steps (default {d.steps})")
    a("--time-budget", type=float, default=None,
      help="training seconds: the cosine LR follows time and training stops there (or at --steps)")
    a("--batch", type=int, default=None, help=f"mini-batch size (default {d.batch})")
    a("--lr", type=float, default=None, help=f"Adam learning rate, cosine-decayed (default {d.lr})")
    a("--lr-final-fraction", type=float, default=None, help="final LR / initial LR (default 0.01)")
    a("--warmup", type=int, default=None, help=f"linear warm-up steps (default {d.warmup})")
    a("--weight-decay", type=float, default=None)
    a("--seed", type=int, default=None, help="seed of scenes, initialisation and batches (default 0)")
    a("--device", default=None, help="cpu (default), cuda, cuda:1, ...")
    a("--sim-images", type=int, default=None,
      help=f"simulator images rendered in memory (default {d.sim_images})")
    a("--sim", default=None, help="use this simulator dataset folder instead of rendering")
    a("--sim-limit", type=int, default=None, help="use only the first N images of --sim")
    a("--supersample", type=int, default=None,
      help="renderer supersampling of in-memory and --online images (default 5: the camera "
           "pipeline's pixels; 2 is close enough with --online and 2.8x cheaper)")
    a("--workers", type=int, default=None, help="rendering processes (default 1)")
    a("--adapt-from", default=None, help="perception checkpoint to start from: adapted with --real "
      "(P25-P100), or trained on simulator images alone (a SIM run continued)")
    a("--real", default=None, help="dataset folder of real (or higher-fidelity) images")
    a("--real-fraction", type=float, default=None, help="fraction of real images per batch (0.75)")
    a("--virtual-targets", type=int, default=None,
      help="uses of each real frame with a random virtual target (datasets with target: virtual)")
    a("--rotation", type=float, default=None, help="augmentation: rotation, +- degrees")
    a("--translation", type=float, default=None, help="augmentation: translation, +- 84x84 pixels")
    a("--noise", type=float, default=None, help="augmentation: Gaussian noise std (image in [0, 1])")
    a("--brightness", type=float, default=None, help="augmentation: brightness/contrast, +-")
    a("--augment-sim", action="store_true", default=None, help="augment simulator images too")
    a("--real-clutter", type=float, default=None,
      help="adaptation: fraction of real images given random boxes pasted around the robot "
           "(whose pixels the labels give), so that few frames are not memorised by background")
    a("--near-target", type=float, default=None,
      help="share of --online simulator scenes and of virtual targets with the target disc at the "
           "hand, as every reach ends (default 0)")
    a("--clutter-margin", type=int, default=None,
      help="adaptation: pixels around the robot (drawn from the labels) that --real-clutter keeps "
           "clear of and --background-swap carries over (default 2; the hifi domain's clutter that "
           "touches the arm costs it most)")
    a("--background-swap", type=float, default=None,
      help="adaptation: fraction of real images whose robot and target (pixels the labels give) "
           "are shown over another real frame's background, its own robot filled in (default 0)")
    a("--distractors", type=float, default=None,
      help="share of randomised --online simulator scenes (and of --real-clutter images) also given "
           "bars at any angle behind the robot, like the hifi domain's background boxes (default 0)")
    a("--adapt-part", choices=ADAPT_PARTS, default=None,
      help="layers trained: all (default); features (the head from features to Omega frozen); "
           "early (only the convolutions before the last feature layer)")
    a("--l2sp", type=float, default=None,
      help="adaptation: weight of the squared distance to the starting weights (L2-SP)")
    a("--randomize", type=float, default=None,
      help="domain randomisation: fraction of simulator images given a random background, "
           "body greys, contrast, gamma and noise (default 0)")
    a("--online", action="store_true", default=None,
      help="simulator scenes rendered on --device as training goes (no fixed set; "
           "reach_core.randomized_renderer: a pool renewed every step); --randomize is then the "
           "share given a random look (camera pose, background, clutter, robot greys and widths, "
           "shading, blur, noise)")
    a("--online-pool", type=int, default=None,
      help=f"--online: images kept on the device (default {d.online_pool})")
    a("--online-refresh", type=float, default=None,
      help=f"--online: fresh images per step replacing the oldest (default {d.online_refresh:g})")
    a("--realism", type=float, default=None,
      help="--online: share of randomised scenes given a real robot's look: a hand-placed webcam "
           "(keystone, lens distortion), a dark robot, posters and lights, physical targets "
           "(default 0)")
    a("--camera", default=None,
      help="camera file (reach calibrate) of the camera that took --real, --val-real and "
           "--unlabelled: their frames are resampled into the virtual camera's first")
    a("--unlabelled", default=None,
      help="folder of real frames without labels (images, or a dataset): adapted to with a "
           "mean-teacher consistency loss beside Eq. 2")
    a("--unlabelled-fraction", type=float, default=None,
      help=f"unlabelled frames added to each batch, as a share of --batch (default "
           f"{d.unlabelled_fraction})")
    a("--unlabelled-weight", type=float, default=None,
      help=f"weight of the consistency loss (default {d.unlabelled_weight})")
    a("--teacher-decay", type=float, default=None,
      help=f"EMA decay of the teacher's weights (default {d.teacher_decay})")
    a("--val-sim", type=int, default=None, help=f"simulator validation images (default {d.val_sim})")
    a("--val-real", default=None, help="dataset folder monitored during training (not used to select)")
    a("--eval-every", type=int, default=None, help=f"steps between validations ({d.eval_every})")
    a("--checkpoint-every", type=int, default=None, help=f"steps between checkpoints ({d.checkpoint_every})")
    a("--target-e", type=float, default=None, help="record when the simulator validation e first "
      "reaches this (default 0.005)")
    a("--no-progress", action="store_true", help="no progress bar")
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
