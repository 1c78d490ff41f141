"""Which part of the higher-fidelity domain's look costs the adapted perception its accuracy?

The same scenes rendered by the hifi renderer with one source of per-frame variation switched off
at a time (camera pose and lens; lights; background clutter; colours and sensor effects; the JPEG
round trip of the datasets), each evaluated as in Table 1 (e, target cm, joint degrees):

    python bench/diagnose_hifi.py                          # shipped adapted network, 200 scenes
    python bench/diagnose_hifi.py --model EE2-FT=src/reach_core/reach_core/models/end2end_ee2ft.pt

A condition whose error falls far below "full" names what the network has not learnt to ignore.
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reach_core import hifi_renderer
from reach_core.end_to_end import load_module
from reach_core.perception import check_tta, robot_mask, perception_errors, predict_batched
from reach_core.renderer import add_target, preprocess, sample_scenes
from reach_core.scene import normalise

MARGIN = 5   # px of the 84 x 84 image around the robot, for the clutter split
MODELS = Path(__file__).resolve().parents[1] / "src/reach_core/reach_core/models"

# condition -> (what stays at its nominal value, sensor noise, JPEG round trip)
CONDITIONS = {
    "full (as the datasets)": ((), 6.0, True),
    "no JPEG": ((), 6.0, False),
    "nominal camera": (("camera",), 6.0, True),
    "fixed lights": (("lights",), 6.0, True),
    "no clutter": (("clutter",), 6.0, True),
    "nominal colours, no sensor effects": (("colours",), 0.0, True),
    "all nominal": (("camera", "lights", "clutter", "colours"), 0.0, True),
}


def _nominal_parts(scene, parts) -> None:
    """Put the named parts of a varied scene back at their nominal values."""
    m = scene.model
    if "camera" in parts:
        m.cam_pos[scene.cam_id] = scene.nominal["cam_pos"]
        m.cam_quat[scene.cam_id] = scene.nominal["cam_quat"]
        m.cam_fovy[scene.cam_id] = hifi_renderer.NOMINAL_FOVY
    if "lights" in parts:
        for k, lid in enumerate(scene.lights):
            m.light_pos[lid] = [(-1.5, 1.5)[k % 2], -2.0, 2.0]
            m.light_dir[lid] = -m.light_pos[lid] / np.linalg.norm(m.light_pos[lid])
            m.light_diffuse[lid] = 0.45
    if "clutter" in parts:
        for gid in scene.clutter:
            m.geom_pos[gid] = [0.0, 50.0, 0.0]     # far behind the wall
    if "colours" in parts:
        m.mat_rgba[scene.wall_mat] = scene.nominal["wall_rgba"]
        m.mat_rgba[scene.floor_mat] = scene.nominal["floor_rgba"]
        m.mat_rgba[scene.red_mat] = scene.nominal["red_rgba"]


def render(target, q, seed: int, parts, noise: float, jpeg: bool) -> np.ndarray:
    """Network images of the scenes with ``parts`` of the look held at their nominal values."""
    vary = hifi_renderer._Scene.vary

    def patched(scene, rng, variation):
        vary(scene, rng, variation)
        _nominal_parts(scene, parts)
    sensor = hifi_renderer._sensor
    hifi_renderer._Scene.vary = patched
    if "colours" in parts:   # white balance, contrast, brightness, gamma off (noise kept apart)
        hifi_renderer._sensor = lambda f, rng, v, n: sensor(f, rng, 0.0, n)
    try:
        frames = hifi_renderer.render_hifi(None, q, seed=seed, noise=noise)
    finally:
        hifi_renderer._Scene.vary, hifi_renderer._sensor = vary, sensor
    if jpeg:   # as write_dataset stores hifi frames (quality 92)
        def roundtrip(f):
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="JPEG", quality=92)
            return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        frames = np.stack([roundtrip(f) for f in frames])
    return preprocess(add_target(frames, target))   # the virtual target, painted after storage


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=None, metavar="NAME=PATH",
                   help="perception networks (default: the shipped adapted one)")
    p.add_argument("--n", type=int, default=200, help="scenes per condition")
    p.add_argument("--seed", type=int, default=7, help="scenes and looks (not the datasets' seeds)")
    p.add_argument("--tta", type=int, default=0)
    args = p.parse_args()
    specs = args.model or [f"adapted={MODELS / 'perception_adapted.pt'}"]
    models = {}
    for spec in specs:   # a perception checkpoint or the perception half of a combined one
        name, path = spec.split("=", 1)
        models[name] = load_module(path, "perception")
        models[name].tta = check_tta(args.tta)
    target, q = sample_scenes(args.n, args.seed)
    omega = normalise(target, q)
    print(f"{args.n} scenes (seed {args.seed}); e = ||Omega_hat - Omega||, target cm, joint deg MAE")
    print(f"{'condition':<38} {'network':<10} {'e':>7} {'tgt cm':>7} {'s1':>6} {'e1':>6} {'w1':>6}")
    rendered = {}
    for cond, (parts, noise, jpeg) in CONDITIONS.items():
        t0 = time.perf_counter()
        images = rendered[cond] = render(target, q, args.seed * 1_000_003, parts, noise, jpeg)
        report(cond, images, models, omega, t0)
    # the clutter split by where it falls: within MARGIN px of the robot (as the simulator draws
    # it from the labels; the hifi camera moves it by a few px) or farther away
    near = robot_mask(torch.from_numpy(omega).float(), margin=MARGIN).numpy()
    full, clean = rendered["full (as the datasets)"], rendered["no clutter"]
    report(f"clutter only within {MARGIN} px of the robot", np.where(near, full, clean), models, omega)
    report(f"clutter only farther than {MARGIN} px", np.where(near, clean, full), models, omega)
    return 0


def report(cond, images, models, omega, t0=None) -> None:
    t0 = time.perf_counter() if t0 is None else t0
    for name, model in models.items():
        m, _ = perception_errors(predict_batched(model, images), omega)
        print(f"{cond:<38} {name:<10} {m['e_mean']:7.4f} {m['target_cm_mean']:7.2f} "
              f"{m['left_s1_deg_mae']:6.2f} {m['left_e1_deg_mae']:6.2f} {m['left_w1_deg_mae']:6.2f}"
              f"   ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
