"""Issue 19's CPU inference figure: per-frame latency of perception + control in the nodes' loop.

One camera frame (uint8 640x480 RGB) -> ``reach_core.renderer.preprocess`` (ROI crop, grey, area
resize) -> perception with the closed loop's default test-time augmentation (``tta`` 1: 9 shifted
copies, the median) -> the control network's greedy available action, side by side in one run:

* torch eager: ``PerceptionModel.predict`` then ``ControlPolicy.act``, as the perception and
  controller nodes run them;
* ONNX Runtime: the same network exported by ``reach export end2end --out X.onnx`` (augmentation
  in the graph), one ``session.run`` a frame.

Each path is timed over ``--frames`` frames after a warm-up (median and 90th percentile, ms a
frame) with ``--threads`` CPU threads, for the shipped combined network (or ``--model``); the
script also checks that both paths pick the same actions.  Other processes on the machine slow
every figure: the load average is printed beside them.

    python bench/bench_inference.py                       # threads 1, 300 frames
    python bench/bench_inference.py --threads 2 --frames 1000
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODELS = Path(__file__).resolve().parents[1] / "src/reach_core/reach_core/models"
TARGET_MS = 2.0


def frames(n: int, seed: int = 0) -> np.ndarray:
    """Simulator camera frames (uint8, 640x480 RGB) of random scenes."""
    from reach_core.renderer import render, sample_scenes
    target, q = sample_scenes(n, seed)
    return render(target, q)


def time_path(step, inputs, warmup: int) -> list[float]:
    """Milliseconds of ``step(frame)`` per frame, after ``warmup`` frames."""
    for f in inputs[:warmup]:
        step(f)
    out = []
    for f in inputs:
        t0 = time.perf_counter()
        step(f)
        out.append(1000 * (time.perf_counter() - t0))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(MODELS / "end2end_ee2ft.pt"), help="combined checkpoint")
    p.add_argument("--onnx", default=None, help="its ONNX export (default: exported now to a temp file)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="CPU threads of torch and of ONNX Runtime")
    p.add_argument("--tta", type=int, default=1)
    args = p.parse_args()

    from reach_core.end_to_end import EndToEndModel, OnnxEndToEnd, export_onnx
    from reach_core.perception import tta_for
    from reach_core.renderer import preprocess

    torch.set_num_threads(args.threads)
    model = EndToEndModel.load(args.model)
    perception, control = model.perception, model.control
    perception.tta = tta_for(perception, args.tta)
    onnx_path = args.onnx or export_onnx(model, Path(tempfile.mkdtemp()) / "e2e.onnx", tta=args.tta)
    session = OnnxEndToEnd(onnx_path, threads=args.threads)
    inputs = list(frames(max(args.frames, args.warmup)))

    def eager(frame):
        with torch.no_grad():
            omega = perception.predict(preprocess(frame[None]))
        return control.act(omega)

    def onnx(frame):
        return session.run(preprocess(frame[None]))[2]

    same = sum(int(eager(f)[0] == onnx(f)[0]) for f in inputs[:50])
    pre = time_path(lambda f: preprocess(f[None]), inputs, args.warmup)
    rows = {"preprocessing alone": pre, "torch eager": time_path(eager, inputs, args.warmup),
            "ONNX Runtime": time_path(onnx, inputs, args.warmup)}
    load = os.getloadavg()
    print(f"per-frame latency, preprocessing + perception (tta {perception.tta}) + control, "
          f"{len(inputs)} frames, {args.threads} thread(s), torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, ms in rows.items():
        print(f"  {name:<22} median {statistics.median(ms):6.3f} ms   p90 {np.percentile(ms, 90):6.3f} ms")
    ratio = statistics.median(rows["torch eager"]) / statistics.median(rows["ONNX Runtime"])
    print(f"  ONNX Runtime / torch eager speed-up: {ratio:.2f}x; same action on {same}/50 frames")
    best = min(statistics.median(rows["torch eager"]), statistics.median(rows["ONNX Runtime"]))
    print(f"  target: <= {TARGET_MS} ms a frame: {'met' if best <= TARGET_MS else 'NOT met'} ({best:.3f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
