"""Throughput of the simple simulator (renderer.py) on this machine's CPU.

    python bench/bench_renderer.py [--batch 64] [--seconds 2]

Prints camera frames per second at the camera resolution (640x480 RGB, :func:`render`), the
preprocessing pipeline alone (:func:`preprocess`, crop -> grey -> 84x84), and network images per
second from :func:`render_net_images`, exact (render + preprocess) and with the supersampled fast
path, together with the fast path's mean absolute difference from the exact images.  Scenes are
random reachable configurations (:func:`sample_scenes`).  Not part of the tests.
"""
from __future__ import annotations

import argparse
import functools
import os
import time

import numpy as np

from reach_core.renderer import preprocess, render, render_net_images, sample_scenes


def rate(fn, items: int, seconds: float) -> float:
    """Items per second of ``fn`` (which handles ``items`` per call), after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        calls += 1
    return calls * items / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="scenes per call (default: 64)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()

    print(f"CPU cores: {os.cpu_count()}, numpy {np.__version__}")
    for batch in (1, args.batch):
        target, q = sample_scenes(batch, seed=0)
        frames = render(target, q)
        exact = render_net_images(target, q)
        print(f"batch {batch}:")
        runs = [("render 640x480 RGB", lambda: render(target, q), "frames/s", None),
                ("preprocess -> 84x84", lambda: preprocess(frames), "frames/s", None),
                ("render_net_images (exact)", lambda: render_net_images(target, q), "images/s",
                 None)]
        for s in (5, 2):
            fast = functools.partial(render_net_images, target, q, supersample=s)
            runs.append((f"render_net_images (s={s})", fast, "images/s", fast()))
        for label, fn, unit, images in runs:
            line = f"  {label:<28}{rate(fn, batch, args.seconds):8.0f} {unit}"
            if images is not None:
                line += f"   MAE vs exact {np.abs(images - exact).mean():.1e}"
            print(line)


if __name__ == "__main__":
    main()
