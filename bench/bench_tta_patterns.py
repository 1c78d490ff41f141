"""Which shifted copies test-time augmentation needs: perception error e per shift pattern.

With ``tta`` 1 over the square the network runs on the 9 copies of the 3x3 square of 1-pixel
shifts and takes the median; the copies are most of the CPU time a frame (docs/inference.md).
This prints e for fewer copies beside it, on the same frames, for each network:

    python bench/bench_tta_patterns.py --data .devdata/hifi_val [--data DIR ...] [--sim-test 400] \
        [--model NAME=PATH ...] [--json OUT]

Patterns: ``none`` (1 copy), ``cross5`` (the centre and its 4 neighbours), ``diagonal5`` (the
centre and the 4 corners), ``ring4`` (the 4 neighbours alone; the median of an even number of
copies is the mean of the two middle ones), ``square9`` (``tta`` 1 over the square). Datasets:
any folder of ``reach data render`` or a user's collection (``--data``, its name is the
folder's), and the simulator's test scenes.
Measured e only; the closed loop is not run here.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "reach_core"))

from reach_core.datasets import load_dataset, sim_test_set  # noqa: E402
from reach_core.perception import PerceptionModel, predict_shifted, square_shifts  # noqa: E402
from reach_core.perception.evaluate import perception_errors  # noqa: E402
from reach_core.perception.model import network_images, tta_shifts  # noqa: E402

MODELS = ROOT / "src" / "reach_core" / "reach_core" / "models"
PATTERNS = {
    "none": [(0, 0)],
    "cross5": tta_shifts(1, "cross"),
    "diagonal5": [(0, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)],
    "ring4": tta_shifts(1, "ring"),
    "square9": square_shifts(1),
}


@torch.inference_mode()
def predict(model: PerceptionModel, images: np.ndarray, shifts, batch: int = 256) -> np.ndarray:
    """Normalised Omega of ``images`` with the median over the copies shifted by ``shifts``."""
    out = []
    for i in range(0, len(images), batch):
        t = torch.from_numpy(np.ascontiguousarray(network_images(images[i:i + batch])))
        out.append(predict_shifted(model.net, t, 1, shifts=shifts).clamp_(0.0, 1.0).numpy())
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="NAME=perception checkpoint "
                    "(default: the shipped end2end_ee2ft and perception_adapted)")
    ap.add_argument("--data", action="append", default=[], help="dataset folder (repeatable)")
    ap.add_argument("--sim-test", type=int, default=400, help="simulator test scenes (0: none)")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    models = dict(m.split("=", 1) for m in args.model) or {
        "end2end_ee2ft": str(MODELS / "end2end_ee2ft.pt"),
        "perception_adapted": str(MODELS / "perception_adapted.pt")}
    sets = {Path(d).name: load_dataset(d, verbose=False) for d in args.data}
    if args.sim_test:
        sets["sim"] = sim_test_set(args.sim_test, 400_2017)
    if not sets:
        raise SystemExit("no frames to measure on: --data DIR and/or --sim-test N")
    res = {}
    for name, path in models.items():
        model = PerceptionModel.load(path)
        res[name] = {}
        for pattern, shifts in PATTERNS.items():
            res[name][pattern] = {k: float(perception_errors(predict(model, ds.images, shifts),
                                                             ds.omega)[0]["e_mean"])
                                  for k, ds in sets.items()}
            print(f"{name:>20} {pattern:>9} ({len(shifts)} copies): "
                  + "  ".join(f"{k} e {v:.4f}" for k, v in res[name][pattern].items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": {k: len(ds.images) for k, ds in sets.items()},
                                               "e": res}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
