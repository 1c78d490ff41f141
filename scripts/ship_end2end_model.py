"""Copy a fine-tuned combined network (a `reach train end2end` run) into the package.

    python scripts/ship_end2end_model.py RUN_DIR [--checkpoint best.pt] [--table3 TABLE3_JSON] [--note TEXT]

Writes src/reach_core/reach_core/models/end2end_ee2ft.{pt,onnx,json}: the combined checkpoint, its
ONNX export (``reach export end2end``, test-time augmentation 1 over the perception node's pattern
of shifts in the graph), and a .json with
the run's exact command, seed, configuration, training
metrics and, with --table3, the Table 3 evaluation written by `python bench/bench_end2end.py
--json`.  The checkpoint is loaded first, so a broken file is never shipped.  ``--checkpoint
best.pt`` ships the run's best evaluation (which may be its starting point, step 0) instead of
its final weights.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from reach_core.end_to_end import EndToEndModel, export_onnx
from reach_core.perception import DEPLOY_TTA_PATTERN

MODELS = Path(__file__).resolve().parent.parent / "src/reach_core/reach_core/models"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run folder of `reach train end2end` (model.pt, metrics.json, config.json)")
    ap.add_argument("--table3", default=None, help="JSON written by bench/bench_end2end.py --json")
    ap.add_argument("--note", default="", help="recorded as 'note' in the .json")
    ap.add_argument("--checkpoint", default="model.pt", help="model.pt (final, default) or best.pt")
    args = ap.parse_args()
    run = Path(args.run)
    model = EndToEndModel.load(run / args.checkpoint)
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    shutil.copyfile(run / args.checkpoint, MODELS / "end2end_ee2ft.pt")
    export_onnx(model, MODELS / "end2end_ee2ft.onnx", tta=1, pattern=DEPLOY_TTA_PATTERN)
    step = model.meta.get("finetune", {}).get("step")
    info = {
        "file": "end2end_ee2ft.pt", "onnx": "end2end_ee2ft.onnx",
        "onnx_tta": {"tta": 1, "tta_pattern": DEPLOY_TTA_PATTERN},
        "role": "EE2-FT" if step != 0 else "EE2 (fine-tuning's best evaluation was its start, step 0)",
        "checkpoint": args.checkpoint, "finetune_step": step,
        "command": metrics.get("command", config.get("command", "")), "seed": config.get("seed"),
        "perception_from": config.get("perception"), "control_from": config.get("control"),
        "device": metrics.get("device", config.get("device")), "note": args.note,
        "metrics": metrics, "config": config,
        **({"table3": json.loads(Path(args.table3).read_text())} if args.table3 else {}),
    }
    (MODELS / "end2end_ee2ft.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"{run} -> {MODELS / 'end2end_ee2ft.pt'} (+ .onnx, .json)")


if __name__ == "__main__":
    main()
