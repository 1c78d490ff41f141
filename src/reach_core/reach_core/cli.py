"""The ``reach`` command: one entry point for training, evaluating and rendering.

Each subcommand lives in the module that owns its science; this file only wires them together.
"""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reach",
        description="Modular deep Q networks for visually-guided planar reaching (Zhang et al. 2017).",
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    def group(name: str, help: str):
        sub = groups.add_parser(name, help=help, description=help)
        return sub.add_subparsers(dest="what", metavar="WHAT", required=True)

    train = group("train", "train a module (control, ...)")
    evaluate = group("eval", "evaluate a trained module")
    render = group("render", "render simulator images")
    data = group("data", "render and check labelled image datasets (perception)")
    export = group("export", "export a trained network for deployment (ONNX)")

    # Each module that owns a command adds its own subparser (with set_defaults(func=...)).
    from . import control_cli, evaluation, renderer
    control_cli.add_cli(train)
    evaluation.add_cli(evaluate)
    renderer.add_cli(render)
    from . import datasets, perception
    datasets.add_cli(data)
    perception.add_train_cli(train)
    perception.add_eval_cli(evaluate)
    from . import end_to_end
    end_to_end.add_train_cli(train)
    end_to_end.add_eval_cli(evaluate)
    end_to_end.add_export_cli(export)
    from . import calibration
    calibration.add_cli(groups)
    from . import pipeline, sweep
    sweep.add_cli(groups)
    pipeline.add_cli(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
