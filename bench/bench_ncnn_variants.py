"""Issue 19: what else was tried to bring the ncnn perception (``tta`` 1: 9 shifted copies) under
2 ms a frame, measured side by side on the same frames.

1. ncnn options, each a variant of the runtime's translated network (``ncnn_graph``) run as
   :class:`NcnnPerception` runs it (9 copies, the median), in turn on every frame (round robin):
   the runtime's fp32 (Winograd F(6,3), packed layouts); Winograd F(4,3) instead; no packed
   layouts; pool allocators; fp16 storage; bf16 storage (AVX512-BF16 on this CPU); int8 (the four
   convolutions quantised by ncnn: weights per output channel, each input by one scale, the largest
   |input| over 64 simulator frames of seed 123, none of a test set); ncnn's own 2 OpenMP threads
   (``--openmp``; they stall whenever another process holds a core).  Per variant: milliseconds
   of perception a frame (median, p95) and a copy, the largest |estimate - the fp32 runtime's|
   (normalised Omega, the median over the copies) and the actions (``control_dof3.pt``, numpy)
   that differ, over ``--check`` frames.
2. Sharing the copies' convolutions (``--sharing``): the first convolution has stride 2, so the
   copies fall into 4 classes of one pixel phase; in a class the copies are windows of one
   canvas (the periodic image over the union of their windows), exact except in a band 4
   keypoint-map pixels wide along each window side that lies inside the canvas, where the copy's
   own zero padding differs.  Printed: the estimate's error without the bands (the approximate
   form), and the cost of the exact form (4 canvases + 12 border strips with one-sided padding +
   9 heads from the assembled maps) from the measured cost of each piece, against 9 copies.

    python bench/bench_ncnn_variants.py [--frames 300] [--check 100] [--openmp] [--sharing]

Wrap it in ``flock /tmp/reach-cpu-timing.lock`` on a shared machine; the load average before and
after is printed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[1] / "src/reach_core/reach_core/models"
CONVS = ("in0", "b1", "b2", "b3")      # the inputs of the four convolutions in ncnn_graph's naming


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f} on {os.cpu_count()} CPUs"


def net_from(param: str, weights: bytes, threads: int = 1, **opts):
    """An ncnn net of a text graph and weights, with ``opts`` set on its options."""
    from reach_core.perception.ncnn_runtime import load_net
    return load_net(param, weights, threads, **opts)[1]


def extract(net, inputs: dict, blob: str = "out0"):
    import ncnn
    ex = net.create_extractor()
    arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in inputs.items()}
    for name, value in arrays.items():      # ncnn.Mat reads the array's memory: kept alive here
        ex.input(name, ncnn.Mat(value))
    ret, out = ex.extract(blob)
    if ret:
        raise RuntimeError(f"ncnn failed ({ret})")
    return np.array(out)


def int8_graph(param: str, weights: bytes, net32, views: np.ndarray) -> tuple[str, bytes]:
    """The graph with every convolution quantised by ncnn (``8=2``: the float weights followed by
    one scale per output channel and one for the input, 127 / the largest |value|); the input
    scales from the fp32 net's blobs on ``views`` (copies' network inputs)."""
    amax = {b: max(float(np.abs(v if b == "in0" else extract(net32, {"in0": v}, b)).max()) for v in views)
            for b in CONVS}
    lines, out, pos, k = param.split("\n"), bytearray(), 0, 0
    for i, line in enumerate(lines):
        kind = line.split(" ")[0]
        fields = dict(f.split("=") for f in line.split()[6:] if "=" in f)
        if kind not in ("Convolution", "InnerProduct", "Gemm"):
            continue
        n = int(fields["8"]) * int(fields["9"]) if kind == "Gemm" else int(fields.get("6", fields.get("2")))
        w = np.frombuffer(weights, np.float32, n, pos + 4)
        size = 4 + 4 * n + (4 * int(fields["0"]) if kind != "Gemm" else 0)
        out += weights[pos:pos + size]
        pos += size
        if kind == "Convolution":
            per_out = np.abs(w.reshape(int(fields["0"]), -1)).max(axis=1)
            out += np.float32(127.0 / np.maximum(per_out, 1e-12)).tobytes()
            out += struct.pack("<f", 127.0 / amax[CONVS[k]])
            lines[i] = line + " 8=2"
            k += 1
    return "\n".join(lines), bytes(out)


def copies_of(fast, image: np.ndarray) -> np.ndarray:
    """The network inputs of the copies of one (84, 84) image, as NcnnPerception builds them."""
    flat = np.append((image.reshape(-1) - np.float32(0.5)) * np.float32(4.0), np.float32(0.0))
    return np.take(flat.astype(np.float32), fast._gather)


def variants(args, model, fast, calib) -> dict:
    """{name: NcnnPerception} of each option variant (its nets swapped in)."""
    from reach_core.perception.ncnn_runtime import NcnnPerception, ncnn_graph
    param, weights, _ = ncnn_graph(model.net)
    base = net_from(param, weights)
    p8, w8 = int8_graph(param, weights, base, calib)
    import ncnn
    pools = (ncnn.UnlockedPoolAllocator(), ncnn.PoolAllocator())   # kept alive with the runners
    nets = {
        "fp32 (the runtime's)": base,
        "fp32, Winograd F(4,3)": net_from(param, weights, use_winograd63_convolution=False),
        "fp32, no packed layout": net_from(param, weights, use_packing_layout=False),
        "fp32, pool allocators": net_from(param, weights, blob_allocator=pools[0],
                                          workspace_allocator=pools[1]),
        "fp16 storage": net_from(param, weights, use_fp16_storage=True, use_fp16_packed=True),
        "bf16 storage": net_from(param, weights, use_bf16_storage=True),
        "int8 convolutions": net_from(p8, w8, use_int8_inference=True),
    }
    if args.openmp:
        nets["fp32, 2 OpenMP threads"] = net_from(param, weights, threads=2)
    out = {}
    for name, net in nets.items():
        runner = NcnnPerception(model)
        runner._nets, runner._pools = [net], pools
        out[name] = runner
    return out


def canvas_plan(radius: int, layout, size: int = 84):
    """The exact sharing's pieces: per pixel-phase class, the gather indices of its canvas (the
    periodic image over its copies' windows, zero padded by p, as s x s phases) and per copy
    (index, row and column offset in the canvas's keypoint maps, sides to recompute)."""
    s, p = layout
    shifts = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    classes: dict = {}
    for dy, dx in shifts:
        classes.setdefault((dy % s, dx % s), []).append((dy, dx))
    plan = []
    for members in classes.values():
        r0, r1 = min(-d for d, _ in members), max(-d for d, _ in members)
        c0, c1 = min(-d for _, d in members), max(-d for _, d in members)
        h, w = size + r1 - r0, size + c1 - c0
        nh, nw = (h + 2 * p) // s, (w + 2 * p) // s
        idx = np.empty((s * s, nh, nw), np.intp)
        for a in range(s):
            for b in range(s):
                t, u = np.arange(nh) * s + a - p, np.arange(nw) * s + b - p
                inside = ((t >= 0) & (t < h))[:, None] & ((u >= 0) & (u < w))[None]
                idx[a * s + b] = np.where(inside, ((t + r0) % size)[:, None] * size + ((u + c0) % size)[None],
                                          size * size)
        copies = [(shifts.index((dy, dx)), (-dy - r0) // s, (-dx - c0) // s,
                   [side for side, inner in (("top", -dy > r0), ("bottom", -dy < r1), ("left", -dx > c0),
                                             ("right", -dx < c1)) if inner])
                  for dy, dx in members]
        plan.append((idx, copies))
    return plan


BAND = 4    # keypoint-map pixels along a window side that its zero padding reaches: 1 from the
#             first convolution (5x5, stride 2: 2 image pixels), +1 for each of the three 3x3 ones
STRIP = BAND + 3 + 2   # phase rows of the input that the band needs (3 padded 3x3 convolutions after
#                        the first, itself 3x3 over the phases)


def sharing(args, model, fast, images, policy):
    """The approximate sharing's error, the exact sharing's check and its cost against 9 copies."""
    from reach_core.perception.ncnn_runtime import ncnn_graph
    param, weights, layout = ncnn_graph(model.net)
    if layout != (2, 2) or param.count("4=1 14=1") != 3:
        raise SystemExit("the sharing is written for the spatial-softmax network (5x5/2, then 3 3x3)")
    net = net_from(param, weights)
    plan = canvas_plan(fast.tta, layout)

    def strip_net(top, bottom, left, right):   # the 3x3 convolutions padded on the copy's own sides only
        lines = [ln.replace("4=1 14=1", f"4={left} 15={right} 14={top} 16={bottom}")
                 if ln.startswith("Convolution") else ln for ln in param.split("\n")]
        return net_from("\n".join(lines), weights)

    strips = {"top": strip_net(1, 0, 1, 1), "bottom": strip_net(0, 1, 1, 1),
              "left": strip_net(1, 1, 1, 0), "right": strip_net(1, 1, 0, 1)}
    cut = {"top": np.s_[:, :STRIP], "bottom": np.s_[:, -STRIP:], "left": np.s_[:, :, :STRIP],
           "right": np.s_[:, :, -STRIP:]}
    band = {"top": np.s_[:, :BAND], "bottom": np.s_[:, -BAND:], "left": np.s_[:, :, :BAND],
            "right": np.s_[:, :, -BAND:]}
    err, moved, exact_err, map_err = [], 0, [], []
    for image in images:
        views = copies_of(fast, image)
        flat = np.append((image.reshape(-1) - np.float32(0.5)) * np.float32(4.0), np.float32(0.0))
        windows, fixed = np.empty((2, len(views), 32, 42, 42), np.float32)
        for idx, copies in plan:
            canvas = extract(net, {"in0": np.take(flat, idx)}, "b4")
            for c, oy, ox, sides in copies:
                windows[c] = fixed[c] = canvas[:, oy:oy + 42, ox:ox + 42]
                for side in sides:      # the exact form: the bands recomputed with the copy's padding
                    fixed[c][band[side]] = extract(strips[side], {"in0": views[c][cut[side]]}, "b4")
        maps = np.stack([extract(net, {"in0": v}, "b4") for v in views])
        map_err.append(float(np.abs(fixed - maps).max() / np.abs(maps).max()))
        exact = np.stack([extract(net, {"in0": v}).reshape(-1) for v in views])
        est = {k: np.clip(np.median(np.stack([extract(net, {"b4": m}).reshape(-1) for m in x]) - fast._back,
                                    axis=0), 0, 1) for k, x in (("window", windows), ("fixed", fixed))}
        want = np.clip(np.median(exact - fast._back, axis=0), 0, 1)
        err.append(float(np.abs(est["window"] - want).max()))
        exact_err.append(float(np.abs(est["fixed"] - want).max()))
        moved += int(policy.act(est["window"]) != policy.act(want))
    print(f"sharing without the border bands (4 canvases, each copy a window): |estimate - exact| max "
          f"{max(err):.4f}, mean {np.mean(err):.4f}; a different action on {moved}/{len(images)} frames")
    print(f"exact sharing (the bands recomputed): keypoint maps within {max(map_err):.1e} of the copies' "
          f"(relative: Winograd tiles fall elsewhere), |estimate - exact| max {max(exact_err):.1e}")

    rng = np.random.default_rng(0)

    def cost(n, shape, inp="in0", out="b4"):
        x = rng.standard_normal(shape).astype(np.float32)
        for _ in range(20):
            extract(n, {inp: x}, out)
        ts = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            extract(n, {inp: x}, out)
            ts.append(1e6 * (time.perf_counter() - t0))
        return statistics.median(ts)

    copy = cost(net, (4, 44, 44), out="out0")
    canvases = sum(cost(net, idx.shape) for idx, _ in plan)
    n_strips = sum(len(sides) for _, copies in plan for *_, sides in copies)
    strip = cost(strips["bottom"], (4, STRIP, 44))
    head = cost(net, (32, 42, 42), "b4", "out0")
    total = canvases + n_strips * strip + len(fast._back) * head
    n = len(fast._back)
    print(f"exact sharing's cost: canvases {canvases:.0f} us ({len(plan)}), strips {n_strips} x {strip:.0f} "
          f"us, heads {n} x {head:.0f} us = {total:.0f} us a frame against {n} copies x {copy:.0f} us = "
          f"{n * copy:.0f} us ({total / (n * copy):.2f}x)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(MODELS / "end2end_ee2ft.pt"))
    p.add_argument("--control", default=str(MODELS / "control_dof3.pt"))
    p.add_argument("--frames", type=int, default=300, help="timed frames a variant")
    p.add_argument("--check", type=int, default=100, help="frames of the accuracy check")
    p.add_argument("--repeat", type=int, default=300, help="timed runs of each sharing piece")
    p.add_argument("--openmp", action="store_true", help="add ncnn's 2 OpenMP threads")
    p.add_argument("--sharing", action="store_true", help="the copies' sharing (part 2)")
    args = p.parse_args()

    from reach_core.control import load_control
    from reach_core.control_numpy import NumpyPolicy
    from reach_core.end_to_end import EndToEndModel
    from reach_core.perception import tta_for
    from reach_core.perception.ncnn_runtime import NcnnPerception
    from reach_core.renderer import preprocess, render, sample_scenes

    before = load()
    model = EndToEndModel.load(args.model).perception
    model.tta = tta_for(model, 1)
    fast = NcnnPerception(model)
    policy = NumpyPolicy(load_control(args.control))
    calib_t, calib_q = sample_scenes(64, 123)      # calibration frames, apart from the checked ones
    calib = np.concatenate([copies_of(fast, im) for im in preprocess(render(calib_t, calib_q))])
    target, q = sample_scenes(max(args.frames, args.check), 0)
    images = preprocess(render(target, q))
    runs = variants(args, model, fast, calib)

    want = np.stack([fast.predict_one(im) for im in images[:args.check]])
    acts = policy.act(want)
    names = list(runs)
    ms = {name: [] for name in names}
    for i, image in enumerate(images[:args.frames]):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            runs[name].predict_one(image)
            ms[name].append(1000 * (time.perf_counter() - t0))
    print(f"ncnn perception variants, tta {fast.tta} ({len(fast._back)} copies), {args.frames} frames in "
          f"turn; before: {before}; after: {load()}")
    base = statistics.median(ms[names[0]])
    for name in names:
        got = np.stack([runs[name].predict_one(im) for im in images[:args.check]])
        med = statistics.median(ms[name])
        print(f"  {name:<26} median {med:6.3f} ms (p95 {np.percentile(ms[name], 95):6.3f}, "
              f"{1000 * med / len(fast._back):4.0f} us a copy, {med / base:4.2f}x)  |estimate - fp32| max "
              f"{np.abs(got - want).max():.1e}, actions differ {int(np.sum(policy.act(got) != acts))}/"
              f"{args.check}")
    if args.sharing:
        sharing(args, model, fast, images[:args.check], policy)
        print(f"  after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
