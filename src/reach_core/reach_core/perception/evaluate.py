"""Evaluation of perception networks (paper section 5.1, Table 1 and Figure 4).

The perception error e = ||Omega_hat - Omega|| over normalised Omega (mean and std per dataset,
as Table 1 reports them), per-component errors in physical units (cm, 84 x 84 px, degrees),
the Table 1 style printout and the Figure 4 style plot.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..scene import DEFAULT_CAMERA, OMEGA_HIGH, OMEGA_LOW, OMEGA_NAMES
from .model import PerceptionModel, predict_batched

PAPER_TABLE1 = {  # net: (Sim mean, Sim std, Real mean, Real std)
    "SIM": (0.013, 0.009, 13.92, 0.877), "RW": (0.537, 0.191, 0.023, 0.046),
    "P25": (0.012, 0.008, 0.025, 0.044), "P50": (0.013, 0.008, 0.024, 0.045),
    "P75": (0.015, 0.010, 0.021, 0.046), "P100": (0.498, 0.162, 0.019, 0.049),
}


def perception_errors(pred: np.ndarray, omega: np.ndarray, camera=DEFAULT_CAMERA) -> tuple[dict, np.ndarray]:
    """Table 1's e = ||Omega_hat - Omega|| (mean, std) and per-component errors in physical units,
    and the per-image e."""
    pred = np.asarray(pred, np.float64)
    omega = np.asarray(omega, np.float64)
    e = np.linalg.norm(pred - omega, axis=1)
    phys = (pred - omega) * (OMEGA_HIGH - OMEGA_LOW)
    target_m = np.linalg.norm(phys[:, :2], axis=1)
    out = {
        "n": int(len(e)), "e_mean": float(e.mean()), "e_std": float(e.std()),
        "e_median": float(np.median(e)), "e_p95": float(np.percentile(e, 95)),
        "target_cm_mean": float(target_m.mean() * 100),
        "target_px_mean": float((target_m / camera.m_per_net_px).mean()),
        "target_px_median": float(np.median(target_m / camera.m_per_net_px)),
    }
    for j, name in enumerate(OMEGA_NAMES):
        if j < 2:
            out[f"{name}_cm_mae"] = float(np.abs(phys[:, j]).mean() * 100)
        else:
            out[f"{name}_deg_mae"] = float(np.degrees(np.abs(phys[:, j])).mean())
    return out, e


def evaluate_model(model: PerceptionModel, datasets: dict) -> tuple[dict, dict]:
    """{name: Dataset} -> ({name: metrics}, {name: per-image e})."""
    metrics, errors = {}, {}
    for name, ds in datasets.items():
        pred = predict_batched(model, ds.images)
        metrics[name], errors[name] = perception_errors(pred, ds.omega)
    return metrics, errors


def plot_errors(errors: dict, path, title: str = "") -> Path:
    """Figure 4 style: box plot of e per (network, dataset) and histograms."""
    from matplotlib.figure import Figure

    names = list(errors)
    fig = Figure(figsize=(11, 4.2), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.boxplot([errors[n] for n in names], sym="o", whis=1.5)
    ax1.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
    ax1.set_ylabel("perception error e = ||Ω̂ − Ω||")
    ax1.set_yscale("log")
    ax1.grid(alpha=0.3)
    allv = np.concatenate([np.asarray(errors[n]) for n in names])
    bins = np.logspace(np.log10(max(allv.min(), 1e-5)), np.log10(max(allv.max(), 1e-4)), 40)
    for n in names:
        ax2.hist(errors[n], bins=bins, histtype="step", lw=1.5, label=n)
    ax2.set_xscale("log")
    ax2.set_xlabel("e")
    ax2.set_ylabel("images")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(title or "perception error per dataset", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def print_table(results: dict) -> None:
    """Table 1 style: rows networks, columns datasets (mean and std of e), then details."""
    dnames = list(dict.fromkeys(d for m in results.values() for d in m))
    head = f"{'network':<22}" + "".join(f"{d[:18]:>22}" for d in dnames)
    print(head + "\n" + " " * 22 + "".join(f"{'e_mean':>11}{'e_std':>11}" for _ in dnames))
    for mname, m in results.items():
        print(f"{mname[:21]:<22}" + "".join(
            f"{m[d]['e_mean']:>11.4f}{m[d]['e_std']:>11.4f}" if d in m else " " * 22 for d in dnames))
    print("\nper component (mean absolute error): target in cm and 84x84 px, joints in degrees")
    for mname, m in results.items():
        for d, r in m.items():
            print(f"  {mname} / {d} (n={r['n']}): target {r['target_cm_mean']:.2f} cm = "
                  f"{r['target_px_mean']:.3f} px (x {r['target_x_cm_mae']:.2f}, y "
                  f"{r['target_y_cm_mae']:.2f} cm); s1 {r['left_s1_deg_mae']:.2f}, e1 "
                  f"{r['left_e1_deg_mae']:.2f}, w1 {r['left_w1_deg_mae']:.2f} deg")
