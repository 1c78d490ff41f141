"""The ``reach train control`` command: argparse wiring only.

The flags map onto :class:`~reach_core.control_training.TrainConfig` fields (one flag per field,
``--config RECIPE``); the run itself is :func:`reach_core.control_training.train`, or with
``--vectorised`` :func:`reach_core.control_vec.train`.
"""
from __future__ import annotations

import json
import os
import sys

from .checkpoints import CheckpointError
from .configs import add_config_args, resolve
from .control_training import TrainConfig, train


def _cmd_train_control(args) -> int:
    try:
        cfg = resolve(TrainConfig, args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dir = args.out or f"runs/control_{cfg.exploration}_dof{cfg.dof}_seed{cfg.seed}"
    if args.resume:
        saved = os.path.join(run_dir, "config.json")
        if not os.path.isfile(saved):
            print(f"error: nothing to resume in {run_dir} (no config.json)", file=sys.stderr)
            return 2
        with open(saved) as f:
            extend = {"total_steps": args.total_steps} if args.total_steps else {}
            cfg = TrainConfig(**(json.load(f) | extend))
    elif os.path.exists(os.path.join(run_dir, "checkpoint.pt")) and not args.force:
        print(f"error: {run_dir} already holds a run; use --resume to continue it, "
              "--force to overwrite, or --out for another directory", file=sys.stderr)
        return 2
    trainer = train
    if args.vectorised:  # the device-resident trainer (reach_core.control_vec)
        from .control_vec import train as trainer
    try:
        trainer(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {os.path.join(run_dir, 'model.pt')}  metrics: {os.path.join(run_dir, 'metrics.json')}")
    return 0


def add_cli(sub) -> None:
    """``reach train control``: one flag per :class:`TrainConfig` field, ``--config RECIPE``."""
    p = sub.add_parser(
        "control", help="train a control network with DQN + K-GPS (or the epsilon-greedy baseline)",
        description="Train the Q-network Omega -> 9 Q-values (paper section 4, Algorithm 1). "
                    "Defaults reproduce the 3-DoF K-GPS setup; settings come from the defaults, then "
                    "the --config recipes (reach_core/recipes/*.yaml), then the flags given.")
    add_config_args(p, TrainConfig)
    p.add_argument("--out", help="run directory (default runs/control_<exploration>_dof<N>_seed<S>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--vectorised", action="store_true",
                   help="environment, replay memory and updates on --device (reach_core.control_vec)")
    p.add_argument("--envs", dest="num_envs", type=int, help="same as --num-envs")
    p.set_defaults(func=_cmd_train_control)
