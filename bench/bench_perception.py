"""The perception figures of issue 3 for the shipped networks (Table 1 style), on this machine.

    python bench/bench_perception.py [--hifi-test DIR] [--sim-test 1000] [--gpu-throughput]

Prints, for src/reach_core/reach_core/models/perception_{sim,adapted}.pt:
  * SIM network on simulator images (render -> preprocess, seed SIM_TEST_SEED): e mean/std
    (target e <= 0.005), target position error in pixels of the 84x84 image;
  * adapted network on held-out higher-fidelity images (target e <= 0.021, with <= 200 hifi
    training frames) and on simulator images (target e <= 0.010: no forgetting);
  * CPU inference time per frame at batch 1, preprocessing (crop -> grey -> 84x84) included, for
    the paper architecture and for the shipped networks' (target <= 1 ms);
  * GPU training throughput and time to the SIM target, as recorded in the models' .json (they were
    trained on the lent GPU by bench/gpu_perception.sh, since replaced by `reach sweep`); with
    --gpu-throughput (needs CUDA) it measures images/s of a training step for each architecture here instead.
The held-out hifi images are rendered (400 frames, seed 2, as bench/gpu_perception.sh used) into
runs/hifi_test unless --hifi-test names a folder.  Not part of the tests.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from reach_core.datasets import load_dataset, render_hifi_dataset, sim_test_set
from reach_core.perception import (PAPER_TABLE1, SIM_TEST_SEED, ArchConfig, PerceptionModel,
                                   PerceptionNet, evaluate_model, trained_with_shifts)
from reach_core.renderer import preprocess, render, sample_scenes

MODELS = Path(__file__).resolve().parent.parent / "src/reach_core/reach_core/models"
ARCHS = {"paper": ArchConfig("paper"),
         "wide": ArchConfig("paper", batchnorm=True, fc_hidden=256),
         "spatial": ArchConfig("spatial", keypoints=32)}


def cpu_latency(model: PerceptionModel, repeats: int = 500) -> tuple[float, float]:
    """Median and 90th percentile ms of preprocess + predict for one 640x480 frame."""
    target, q = sample_scenes(16, seed=1)
    frames = render(target, q)
    for k in range(30):
        model.predict(preprocess(frames[k % 16])[None])
    times = []
    for k in range(repeats):
        t0 = time.perf_counter()
        model.predict(preprocess(frames[k % 16])[None])
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3), float(np.percentile(times, 90) * 1e3)


def gpu_throughput(cfg: ArchConfig, batch: int = 256, seconds: float = 5.0) -> float:
    """Training images/s of one step as in reach_core.perception.train (gather, forward, Eq. 2
    loss, backward, Adam) on CUDA with data resident on the GPU."""
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    net = PerceptionNet(cfg).to(dev)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    data = torch.rand(100_000, 84, 84, device=dev).half()
    labels = torch.rand(100_000, 5, device=dev)

    def step():
        idx = torch.randint(len(data), (batch,), device=dev)
        loss = 0.5 * ((net(data[idx].float()) - labels[idx]) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(50):
        step()
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            step()
        n += 20
        torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - t0)


def main() -> None:
    args = _parse_args()
    print(f"CPU: {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    names = [n for n in ("sim", "adapted") if (MODELS / f"perception_{n}.pt").is_file()]
    models = {n: PerceptionModel.load(MODELS / f"perception_{n}.pt") for n in names}
    info = {n: json.loads((MODELS / f"perception_{n}.json").read_text()) for n in models}
    if len(models) < 2 and not args.skip_eval:
        raise SystemExit(f"the shipped models are missing from {MODELS} (use --skip-eval)")
    if not args.skip_eval:
        data = _test_data(args)
        results = _print_table(models, data)
        _print_components(results)
        _print_targets(results, info)
        _print_tta(models, data, results)
    _print_latencies(models, args.threads)
    _print_gpu_training(info, args.gpu_throughput)


def _parse_args() -> argparse.Namespace:
    """The command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hifi-test", default=None, help="held-out higher-fidelity dataset folder")
    ap.add_argument("--sim-test", type=int, default=1000, help="simulator test images (1000)")
    ap.add_argument("--gpu-throughput", action="store_true", help="measure GPU images/s here")
    ap.add_argument("--skip-eval", action="store_true", help="only the timings")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for the latency (1)")
    return ap.parse_args()


def _test_data(args) -> dict:
    """The simulator test set and the held-out hifi images (rendered first if missing)."""
    sim = sim_test_set(args.sim_test, SIM_TEST_SEED)
    hifi_dir = args.hifi_test or "runs/hifi_test"
    if not (Path(hifi_dir) / "labels.csv").is_file():
        print(f"rendering 400 held-out hifi frames (seed 2) into {hifi_dir} ...")
        render_hifi_dataset(hifi_dir, 400, seed=2, progress=False)
    hifi = load_dataset(hifi_dir, verbose=False)
    print(f"\nTable 1 style (e = ||Omega_hat - Omega||): {len(sim)} simulator images "
          f"(seed {SIM_TEST_SEED}), {len(hifi)} held-out hifi images ({hifi_dir})")
    return {"sim": sim, "hifi": hifi}


def _print_table(models: dict, data: dict) -> dict:
    """Table 1 style rows of the shipped networks and the paper's; their metrics by name."""
    print(f"{'network':<28}{'Sim e_mean':>12}{'e_std':>9}{'Hifi e_mean':>13}{'e_std':>9}"
          f"{'target px (sim)':>17}")
    results = {}
    for name, model in models.items():
        m, _ = evaluate_model(model, data)
        results[name] = m
        label = f"{name} ({model.arch.arch}{', bn' if model.arch.batchnorm else ''})"
        print(f"{label:<28}{m['sim']['e_mean']:>12.4f}{m['sim']['e_std']:>9.4f}"
              f"{m['hifi']['e_mean']:>13.4f}{m['hifi']['e_std']:>9.4f}"
              f"{m['sim']['target_px_mean']:>17.3f}")
    for net in ("SIM", "P75"):
        p = PAPER_TABLE1[net]
        print(f"{'paper ' + net + ' (Sim, Real)':<28}{p[0]:>12.3f}{p[1]:>9.3f}{p[2]:>13.3f}{p[3]:>9.3f}")
    return results


def _print_components(results: dict) -> None:
    """Mean absolute error per component of Omega, per network and test set."""
    print("\nper component (mean absolute error):")
    for name, m in results.items():
        for d, r in m.items():
            print(f"  {name:<8}/ {d:<5} target {r['target_cm_mean']:6.2f} cm = "
                  f"{r['target_px_mean']:.3f} px;  s1 {r['left_s1_deg_mae']:.2f}, "
                  f"e1 {r['left_e1_deg_mae']:.2f}, w1 {r['left_w1_deg_mae']:.2f} deg")


def _print_targets(results: dict, info: dict) -> None:
    """Issue 3's targets, met or not."""
    s, a = results["sim"]["sim"]["e_mean"], results["adapted"]
    n_hifi = info["adapted"].get("metrics", {}).get("real_frames")
    print("\nissue 3 targets:")
    print(f"  SIM on simulator images        e = {s:.4f}   (target <= 0.005: "
          f"{'met' if s <= 0.005 else 'NOT met'}); target error "
          f"{results['sim']['sim']['target_px_mean']:.3f} px at 84x84")
    print(f"  adapted on held-out hifi       e = {a['hifi']['e_mean']:.4f}   (target <= 0.021 "
          f"with <= 200 hifi frames{'' if n_hifi is None else f'; trained with {n_hifi}'}: "
          f"{'met' if a['hifi']['e_mean'] <= 0.021 else 'NOT met'})")
    print(f"  adapted on simulator images    e = {a['sim']['e_mean']:.4f}   (target <= 0.010: "
          f"{'met' if a['sim']['e_mean'] <= 0.010 else 'NOT met'})")


def _print_tta(models: dict, data: dict, results: dict) -> None:
    """Test-time augmentation (PerceptionModel(tta=r)): the same networks, the median over the
    image shifted by up to r pixels; adds to ``results``."""
    print("\nwith test-time augmentation (median over shifts up to r px; reach eval perception --tta r):")
    for r in (1, 2):
        for name, plain in models.items():
            model = PerceptionModel(plain.net, plain.meta, tta=r)   # the same weights
            if not trained_with_shifts(model):
                print(f"  r = {r}  {name:<9} (trained without camera shifts: not for it)")
                continue
            m, _ = evaluate_model(model, data)
            results[f"{name}_tta{r}"] = m
            print(f"  r = {r}  {name:<9} sim e {m['sim']['e_mean']:.4f} +- {m['sim']['e_std']:.4f}, "
                  f"hifi e {m['hifi']['e_mean']:.4f} +- {m['hifi']['e_std']:.4f};  hifi s1 "
                  f"{m['hifi']['left_s1_deg_mae']:.2f}, e1 {m['hifi']['left_e1_deg_mae']:.2f}, w1 "
                  f"{m['hifi']['left_w1_deg_mae']:.2f} deg")


def _print_latencies(models: dict, threads: int) -> None:
    """CPU inference per frame, preprocessing included, of each architecture and shipped network."""
    torch.set_num_threads(threads)
    print(f"\nCPU inference, batch 1, preprocessing (640x480 frame -> 84x84) included, "
          f"{threads} torch thread(s):")
    nets = {f"{k} architecture (untrained weights)": PerceptionModel(PerceptionNet(c))
            for k, c in ARCHS.items()}
    nets.update({f"shipped perception_{k}.pt": m for k, m in models.items()})
    nets.update({f"shipped perception_{k}.pt, tta 1": PerceptionModel(m.net, m.meta, tta=1)
                 for k, m in models.items() if trained_with_shifts(m)})
    for name, model in nets.items():
        med, p90 = cpu_latency(model)
        print(f"  {name:<40} median {med:.3f} ms, p90 {p90:.3f} ms")


def _print_gpu_training(info: dict, measure: bool) -> None:
    """GPU training throughput from the models' .json; with ``measure``, measured here too."""
    print("\nGPU training (from the models' .json, trained by bench/gpu_perception.sh):")
    for name, js in info.items():
        m = js.get("metrics", {})
        print(f"  {name:<8} {m.get('device_name', '?')}: {m.get('images_per_s', float('nan')):,.0f} "
              f"images/s over {m.get('steps', '?')} steps of {m.get('batch', '?')} "
              f"({m.get('train_seconds', '?')} s; {js.get('concurrent_note', '')})")
        if name == "sim":
            r = m.get("reached_target")
            print(f"           time to e <= {m.get('target_e', 0.005)} on the validation images: "
                  + (f"{r['train_seconds']} s (step {r['step']})" if r else "not reached"))
    if measure:
        if not torch.cuda.is_available():
            print("  --gpu-throughput: no CUDA GPU here")
        else:
            print(f"measured here on {torch.cuda.get_device_name()} (one process alone):")
            for k, c in ARCHS.items():
                print(f"  {k:<8} {gpu_throughput(c):,.0f} training images/s (batch 256)")


if __name__ == "__main__":
    main()
