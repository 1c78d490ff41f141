"""Table 3: the combined networks reaching end to end, in the simulator and the hifi domain.

:class:`Observer` renders each trial's scene (simulator or higher-fidelity domain, with the
robustness scenes: occluders, no target, two targets) and estimates Omega with a perception
function; :func:`evaluate_rows` runs the trials for EE1, EE2, EE2-FT and the CR baseline
(ground-truth Omega); :func:`format_table3` and :func:`plot_table3` report them beside the
paper's figures.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ..control import ControlPolicy
from ..perception import NET_SIZE, check_tta, tta_for
from ..perception.model import check_tta_pattern
from ..scene import DEFAULT_CAMERA
from ..simulator import ReachEnv, TaskConfig
from .model import EndToEndModel

PAPER_TABLE3 = {  # (scenario, net): (d_med cm, d_med px, d_Q3 cm, d_Q3 px, R-bar)
    ("sim", "EE1"): (4.7, 2.0, 6.7, 2.8, 0.313), ("sim", "EE2"): (4.6, 1.9, 6.2, 2.6, 0.319),
    ("sim", "EE2-FT"): (3.6, 1.5, 4.8, 2.0, 0.626), ("sim", "CR"): (3.4, 1.4, 4.3, 1.8, 0.761),
    ("hifi", "EE1"): (41.8, 17.5, 80.2, 33.6, -0.050), ("hifi", "EE2"): (4.6, 1.9, 6.2, 2.6, 0.219),
    ("hifi", "EE2-FT"): (3.7, 1.6, 5.2, 2.2, 0.628), ("hifi", "CR"): (3.2, 1.3, 4.3, 1.8, 0.781),
}


def occluder_boxes(n: int, target_px: np.ndarray, rng: np.random.Generator, count: int = 2):
    """``count`` random grey boxes per trial in 84 x 84 image coordinates, kept off the target disc:
    (n, count, 5) of x0, y0, w, h, grey."""
    boxes = np.zeros((n, count, 5))
    for i in range(n):
        for k in range(count):
            for _ in range(100):
                w, h = rng.uniform(8, 18, 2)
                x0, y0 = rng.uniform(0, NET_SIZE - w), rng.uniform(0, NET_SIZE - h)
                cx = np.clip(target_px[i, 0], x0, x0 + w)
                cy = np.clip(target_px[i, 1], y0, y0 + h)
                if math.hypot(cx - target_px[i, 0], cy - target_px[i, 1]) > 6.0:
                    break
            boxes[i, k] = (x0, y0, w, h, rng.uniform(0.1, 0.9))
    return boxes


def _paint_boxes(images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = images.copy()
    for i in range(len(out)):
        for x0, y0, w, h, g in boxes[i]:
            out[i, int(y0):int(y0 + h), int(x0):int(x0 + w)] = g
    return out


class Observer:
    """``observe(env)`` for :func:`reach_core.evaluation.run_trials`: render each trial's scene in
    the simulator (``"sim"``) or higher-fidelity (``"hifi"``) domain and estimate Omega with a
    perception function; ``perceive=None`` returns the ground-truth Omega (the CR baseline).

    Only trials still running are rendered and perceived (a finished trial keeps its last
    estimate: run_trials records nothing of it).  ``scene`` changes what the camera sees, for the
    robustness checks: ``"occluder"`` (two grey boxes per trial, off the target), ``"no-target"``
    (no target disc), ``"two-targets"`` (a second, decoy disc at another reachable position).
    In the hifi domain each trial keeps one look (camera, lights, clutter, sensor) for its
    whole run, drawn from ``seed + trial``.
    """

    SCENES = ("normal", "occluder", "no-target", "two-targets")

    def __init__(self, perceive=None, domain: str = "sim", scene: str = "normal", seed: int = 0,
                 supersample: int = 5):
        if domain not in ("sim", "hifi"):
            raise ValueError(f"domain must be 'sim' or 'hifi', got {domain!r}")
        if scene not in self.SCENES:
            raise ValueError(f"scene must be one of {self.SCENES}, got {scene!r}")
        self.perceive, self.domain, self.scene = perceive, domain, scene
        self.seed, self.supersample = int(seed), supersample
        self.cache = None
        self.done = None
        self.frames = 0
        self.render_s = 0.0
        self.decoy_distance = None

    def _setup(self, env: ReachEnv) -> None:
        from ..renderer import sample_scenes
        n = env.n
        rng = np.random.default_rng([self.seed, 77])
        self.done = np.zeros(n, bool)
        self.cache = np.zeros((n, 5), np.float32)
        self.decoy = sample_scenes(n, self.seed + 991)[0]
        self.boxes = occluder_boxes(n, DEFAULT_CAMERA.to_net_pixels(env.target), rng) \
            if self.scene == "occluder" else None
        self.decoy_distance = np.full(n, np.nan)

    def images(self, target: np.ndarray, q: np.ndarray, idx: np.ndarray) -> np.ndarray:
        from ..renderer import add_target, preprocess, render_net_images
        far = np.full_like(target, 50.0)   # a target painted 50 m away is outside every frame
        if self.domain == "sim":
            ss = self.supersample
            if self.scene == "no-target":
                img = render_net_images(far, q, supersample=ss)
            elif self.scene == "two-targets":
                a = render_net_images(target, q, supersample=ss)
                b = render_net_images(self.decoy[idx], q, supersample=ss)
                none = render_net_images(far, q, supersample=ss)
                img = np.where(np.abs(b - none) > 1e-4, b, a)
            else:
                img = render_net_images(target, q, supersample=ss)
        else:
            from ..hifi_renderer import render_hifi
            frames = render_hifi(None, q, seed=self.seed * 1009 + idx)
            if self.scene != "no-target":
                frames = add_target(frames, target)
            if self.scene == "two-targets":
                frames = add_target(frames, self.decoy[idx])
            img = preprocess(frames)
        if self.scene == "occluder":
            img = _paint_boxes(img, self.boxes[idx])
        return img.astype(np.float32, copy=False)

    def __call__(self, env: ReachEnv) -> np.ndarray:
        if self.done is None:
            self._setup(env)
        if self.perceive is None:
            return env.observe()
        self.done |= (env.n_within >= env.cfg.success_steps) | (env.t >= env.cfg.max_steps)
        idx = np.flatnonzero(~self.done)
        if idx.size:
            d2 = np.linalg.norm(env.arm.forward(env.q[idx]) - self.decoy[idx], axis=-1)
            self.decoy_distance[idx] = d2
            t0 = time.perf_counter()
            img = self.images(env.target[idx], env.q[idx], idx)
            self.render_s += time.perf_counter() - t0
            self.frames += idx.size
            self.cache[idx] = self.perceive(img)
        return self.cache.copy()


def set_tta(rows: dict, radius: int, log=None, pattern: str = "square") -> None:
    """Test-time augmentation of ``radius`` px over the shifts of ``pattern`` (square, cross or ring:
    :func:`reach_core.perception.model.tta_shifts`) for the perception of every end-to-end row
    ({name: EndToEndModel}; other rows are left alone) whose network was trained with camera
    shifts; the others are named in ``log`` and keep none (shifted images would mislead them)."""
    radius, pattern = check_tta(radius), check_tta_pattern(pattern)
    for name, row in rows.items():
        if not radius or not isinstance(row, EndToEndModel):
            continue
        row.perception.tta = tta_for(row.perception, radius)
        row.perception.tta_pattern = pattern
        if row.perception.tta:
            if log:
                log(f"{name}: test-time augmentation, shifts up to {radius} px ({pattern})")
        elif log:
            log(f"{name}: no test-time augmentation (its perception network was trained without "
                f"camera shifts, and shifted images would mislead it)")


def evaluate_rows(rows: dict, task: TaskConfig, trials: int, seed: int, domain: str = "sim",
                  scene: str = "normal", log=None, no_revisit: bool = False,
                  odometry: bool = False) -> dict:
    """{name: EndToEndModel or None (CR: ground truth)} -> {name: (EvalResult, seconds, observer)}.
    For CR, ``rows[name]`` may also be a ControlPolicy.  ``no_revisit``: every row's controller
    runs with the no-revisit rule of the ROS controller (:class:`reach_core.control.NoRevisit`),
    fed with the configurations it perceives, or with ``odometry`` the first one plus the moves
    it commanded (``NoRevisit(odometry=True)``)."""
    from ..control import NoRevisit
    from ..evaluation import run_trials
    out = {}
    for name, model in rows.items():
        t0 = time.perf_counter()
        if model is None or isinstance(model, ControlPolicy):
            control = model or rows.get("_control")
            obs = Observer(None, domain, scene, seed)
        else:
            obs = Observer(model.perceive, domain, scene, seed)
            control = model.control     # shares its network with model.net's control half
        policy = NoRevisit(control, odometry=odometry) if no_revisit else (
            control.act if obs.perceive is None else model.act_omega)
        res = run_trials(policy, task, trials=trials, seed=seed, observe=obs)
        out[name] = (res, time.perf_counter() - t0, obs)
        if log:
            log(f"  {domain}/{scene} {name}: success {res.success_rate:.3f}, d_med {res.d_med_px:.2f} px, "
                f"R-bar {res.mean_return:.3f} ({time.perf_counter() - t0:.0f} s, {obs.frames} frames)")
    return out


def format_table3(results: dict, paper: bool = True) -> str:
    """results {(scenario, net): EvalResult} -> Table 3 style text."""
    head = (f"{'scenario':<9}{'net':<26}{'trials':>7}{'d_med cm':>9}{'px':>6}{'d_Q3 cm':>9}{'px':>6}"
            f"{'R-bar':>8}{'success %':>10}")
    lines = [head, "-" * len(head)]
    for (scen, net), r in results.items():
        lines.append(f"{scen:<9}{net:<26}{r.trials:>7}{r.d_med_cm:>9.2f}{r.d_med_px:>6.2f}"
                     f"{r.d_q3_cm:>9.2f}{r.d_q3_px:>6.2f}{r.mean_return:>8.3f}{100 * r.success_rate:>10.2f}")
        base = net.split(" ")[0]
        if paper and (scen, base) in PAPER_TABLE3:
            p = PAPER_TABLE3[(scen, base)]
            lines.append(f"{'':<9}{'  paper':<26}{'':>7}{p[0]:>9.1f}{p[1]:>6.1f}{p[2]:>9.1f}{p[3]:>6.1f}"
                         f"{p[4]:>8.3f}")
    return "\n".join(lines)


def plot_table3(results: dict, path, title: str = "") -> Path:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    names = [f"{s}\n{n}" for s, n in results]
    d = [r.final_distance_m / DEFAULT_CAMERA.m_per_net_px for r in results.values()]
    ax1.boxplot(d, sym=".", whis=1.5)
    ax1.set_xticks(range(1, len(names) + 1), names, fontsize=7)
    ax1.set_yscale("log")
    ax1.set_ylabel("final distance d [84x84 px]")
    ax1.axhline(0.05 / DEFAULT_CAMERA.m_per_net_px, color="k", ls=":", lw=1, label="delta (5 cm)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    x = np.arange(len(names))
    ax2.bar(x, [r.mean_return for r in results.values()], color="C1")
    ax2.set_xticks(x, names, fontsize=7)
    ax2.set_ylabel("average accumulated reward R-bar")
    ax2.grid(alpha=0.3)
    fig.suptitle(title or "End-to-end reaching (Table 3)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
