"""Issue 19's CPU inference figure: per-frame latency of perception + control in the nodes' loop.

One camera frame (uint8 640x480 RGB) -> preprocessing (ROI crop, grey, area resize) -> perception
with the closed loop's test-time augmentation (``tta`` 1 over the pattern of ``--tta-pattern``:
the ring, 4 shifted copies and the nodes' default, the cross, 5, or the square, 9; the median) ->
the controller's greedy available action, timed side by side in one run, old and new:

* old, ONNX Runtime (what the main job ran): ``renderer.preprocess``, the shipped
  ``end2end_ee2ft.onnx`` through ``OnnxPerception.predict``, then ``ControlPolicy.act`` (torch);
* old, torch: ``renderer.preprocess``, ``PerceptionModel.predict``, ``ControlPolicy.act``;
* new (what the nodes run now): ``renderer.preprocess_frame`` (OpenCV),
  :class:`reach_core.perception.ncnn_runtime.NcnnPerception` (ncnn, Winograd convolutions) on the
  combined checkpoint's perception half, then :class:`reach_core.control_numpy.NumpyPolicy`;
  with several ``--tta-pattern`` one new path a pattern (the old paths run the first).

The paths run in turn on every frame (round robin; with ``--threads`` > 1 every 20 frames, see
:func:`round_robin`), so a burst of load from other processes hits them alike; each prints the
median and 95th percentile (ms a frame, preprocessing included) over ``--frames`` frames after
``--warmup``, then the parts alone (preprocessing, perception, control) and the speed-ups.  Last,
each new path runs alone over the same frames (warm, as the node runs its one path; taking turns
costs it cold caches and, with 2 threads, the other runtimes' idle threads): the target is judged
on that figure, and the figure taking turns is printed beside it.  The
control network is the controller node's default (``control_dof3.pt``; ``--control``).
Correctness on the same frames: the largest |difference| of the normalised estimate (new vs
torch, ONNX Runtime vs torch) and how often the actions agree.  The load average (``uptime``)
before and after is printed: other processes slow every figure.

    python bench/bench_inference.py --onnx src/reach_core/reach_core/models/end2end_ee2ft.onnx --frames 500
    python bench/bench_inference.py --threads 2 --frames 1000
    python bench/bench_inference.py --tta-pattern ring --tta-pattern cross --tta-pattern square \
        --threads 2 --frames 1000
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from reach_core.perception import DEPLOY_TTA_PATTERN as DEFAULT_PATTERN, TTA_PATTERNS

MODELS = Path(__file__).resolve().parents[1] / "src/reach_core/reach_core/models"
TARGET_MS = 2.0


def frames(n: int, seed: int = 0) -> np.ndarray:
    """Simulator camera frames (uint8, 640x480 RGB) of random scenes, the target drawn in."""
    from reach_core.renderer import render, sample_scenes
    target, q = sample_scenes(n, seed)
    return render(target, q)


def load() -> str:
    """The load average, as ``uptime`` prints it."""
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f} on {os.cpu_count()} CPUs"


def round_robin(paths: dict, inputs, warmup: int, chunk: int = 1) -> dict[str, list[float]]:
    """Milliseconds a frame of each path, the paths taking turns (order rotated) every ``chunk``
    frames.  With ``chunk`` > 1 the first frame of each turn is run untimed: with several
    threads, the previous path's runtime (torch's OpenMP, ONNX Runtime's pool) still spins on the
    cores for a while after its call, which no node sees (each runs one runtime)."""
    names = list(paths)
    for f in inputs[:warmup]:
        for name in names:
            paths[name](f)
    out = {name: [] for name in names}
    for k, i in enumerate(range(0, len(inputs), chunk)):
        for name in names[k % len(names):] + names[:k % len(names)]:
            if chunk > 1:
                paths[name](inputs[i])
            for f in inputs[i:i + chunk]:
                t0 = time.perf_counter()
                paths[name](f)
                out[name].append(1000 * (time.perf_counter() - t0))
    return out


def build(args):
    """The old and new per-frame paths, and their parts: {name: frame -> result}."""
    from reach_core.control import load_control
    from reach_core.control_numpy import NumpyPolicy
    from reach_core.end_to_end import EndToEndModel, OnnxPerception, export_onnx
    from reach_core.perception import tta_for
    from reach_core.perception.ncnn_runtime import NcnnPerception
    from reach_core.renderer import preprocess, preprocess_frame

    first, *more = args.tta_pattern
    perception = EndToEndModel.load(args.model).perception
    perception.tta, perception.tta_pattern = tta_for(perception, args.tta), first
    if args.onnx is None:
        import tempfile
        args.onnx = str(export_onnx(EndToEndModel.load(args.model), Path(tempfile.mkdtemp()) / "e2e.onnx",
                                    tta=args.tta, pattern=first))
    onnx = OnnxPerception(args.onnx, threads=args.threads)
    if onnx.tta_pattern != first:
        raise SystemExit(f"{args.onnx} was exported with the {onnx.tta_pattern} pattern, not {first}")
    fast = NcnnPerception(perception, threads=args.threads)
    others = {}
    for pattern in more:
        others[pattern] = NcnnPerception(perception, threads=args.threads)
        others[pattern].tta_pattern = pattern
    policy = load_control(args.control)
    fast_policy = NumpyPolicy(policy)
    omega = np.full(5, 0.5, dtype=np.float32)
    image = preprocess(frames(1, seed=99))
    whole = {
        "old: ONNX Runtime + torch control": lambda f: policy.act(onnx.predict(preprocess(f[None]))[0]),
        "old: torch + torch control": lambda f: policy.act(perception.predict(preprocess(f[None]))[0]),
        new_path(first): lambda f: fast_policy.act(fast.predict(preprocess_frame(f)[None])[0]),
    }
    for pattern, net in others.items():
        whole[new_path(pattern)] = (lambda f, net=net:
                                    fast_policy.act(net.predict(preprocess_frame(f)[None])[0]))
    parts = {
        "preprocessing, old (numpy)": lambda f: preprocess(f[None]),
        "preprocessing, new (OpenCV)": lambda f: preprocess_frame(f),
        "perception, ONNX Runtime": lambda f: onnx.predict(image),
        "perception, torch": lambda f: perception.predict(image),
        f"perception, ncnn ({first})": lambda f: fast.predict(image),
        **{f"perception, ncnn ({pattern})": (lambda f, net=net: net.predict(image))
           for pattern, net in others.items()},
        "control, torch": lambda f: policy.act(omega),
        "control, numpy": lambda f: fast_policy.act(omega),
    }
    return whole, parts, (perception, onnx, fast, policy, fast_policy)


def new_path(pattern: str) -> str:
    """The name of the new path with test-time augmentation over ``pattern``."""
    return f"new: ncnn + numpy control ({pattern})"


def agreement(inputs, models) -> str:
    """Largest |estimate difference| (normalised) and action agreement over ``inputs``."""
    from reach_core.renderer import preprocess, preprocess_frame
    perception, onnx, fast, policy, fast_policy = models
    x_old = preprocess(inputs)
    x_new = np.stack([preprocess_frame(f) for f in inputs])
    want = perception.predict(x_old)
    new = np.concatenate([fast.predict(x[None]) for x in x_new])
    ort = onnx.predict(x_old)
    same = int(np.sum(fast_policy.act(new) == policy.act(want)))
    return (f"outputs on {len(inputs)} frames: max |new - torch| {np.abs(new - want).max():.2e}, "
            f"max |ONNX Runtime - torch| {np.abs(ort - want).max():.2e} (normalised Omega); "
            f"same action as the old torch path on {same}/{len(inputs)}; preprocessing max |new - old| "
            f"{np.abs(x_new - x_old).max():.1e}")


def report(rows: dict[str, list[float]]):
    """One line a path: median and p95."""
    for name, ms in rows.items():
        print(f"  {name:<45} median {statistics.median(ms):7.3f} ms   p95 {np.percentile(ms, 95):7.3f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(MODELS / "end2end_ee2ft.pt"), help="combined checkpoint")
    p.add_argument("--onnx", default=None, help="its ONNX export (default: exported now to a temp file)")
    p.add_argument("--control", default=str(MODELS / "control_dof3.pt"),
                   help="the controller's checkpoint (the controller node's default)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="CPU threads of torch, ONNX Runtime and ncnn")
    p.add_argument("--tta", type=int, default=1)
    p.add_argument("--tta-pattern", action="append", choices=TTA_PATTERNS, default=None,
                   help="the shifts of the augmentation (repeatable: one new path each; the old "
                        "paths run the first; default: the perception node's default, "
                        f"{DEFAULT_PATTERN})")
    args = p.parse_args()
    args.tta_pattern = list(dict.fromkeys(args.tta_pattern or [DEFAULT_PATTERN]))

    torch.set_num_threads(args.threads)
    before = load()
    whole, parts, models = build(args)
    inputs = list(frames(max(args.frames, args.warmup)))
    check = agreement(np.stack(inputs[:100]), models)
    chunk = 1 if args.threads == 1 else 20
    rows = round_robin(whole, inputs, args.warmup, chunk)
    part_rows = round_robin(parts, inputs, args.warmup, chunk)
    print(f"per-frame latency, preprocessing + perception (tta {models[2].tta}, "
          f"{' and '.join(args.tta_pattern)}) + control, {len(inputs)} "
          f"frames, {args.threads} thread(s) (paths in turn every {chunk} frame(s)), torch "
          f"{torch.__version__}; before: {before}; after: {load()}")
    report(rows)
    new = statistics.median(rows[new_path(args.tta_pattern[0])])
    for name in [n for n in rows if not n.startswith("new")]:
        ratio = statistics.median(rows[name]) / new
        print(f"  speed-up of the new path over '{name}': {ratio:.2f}x (medians)")
    print("parts alone (the same frames):")
    report(part_rows)
    print(f"  {check}")
    # a node runs one path, warm: each new path alone over the same frames, one after the other
    alone = {name: round_robin({name: whole[name]}, inputs, args.warmup)[name]
             for name in whole if name.startswith("new")}
    print("each new path alone, as a node runs it (the same frames, one path after the other):")
    report(alone)
    for pattern in args.tta_pattern:
        ms = statistics.median(alone[new_path(pattern)])
        print(f"  target ({pattern}): <= {TARGET_MS} ms a frame: {'met' if ms <= TARGET_MS else 'NOT met'} "
              f"({ms:.3f} ms alone; {statistics.median(rows[new_path(pattern)]):.3f} ms taking turns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
