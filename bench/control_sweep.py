"""Train several control configurations side by side, one process per CPU core, and rank them.

    python bench/control_sweep.py --out runs/sweep --steps 600000 \
        --grid '{"base": {}, "dueling": {"dueling": true}, "n5": {"n_step": 5}}'

Each entry of the grid overrides TrainConfig fields.  Prints one line per configuration
(final and best success rate on the training-time evaluation, wall-clock time) and writes
``summary.json`` in --out.  Used to choose the shipped defaults; not part of the tests.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time


def _run(args):
    name, overrides, out, steps = args
    import torch
    torch.set_num_threads(1)
    from reach_core.control_training import TrainConfig, train
    cfg = TrainConfig(**({"total_steps": steps, "threads": 1} | overrides))
    t = time.perf_counter()
    m = train(cfg, os.path.join(out, name), progress=False, log=lambda *a: None)
    return name, overrides, m["final_success_rate"], m["best_success_rate"], time.perf_counter() - t, \
        [(h["step"], h["success_rate"]) for h in m["history"]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", required=True, help="JSON object: name -> TrainConfig overrides")
    p.add_argument("--steps", type=int, default=600_000)
    p.add_argument("--out", default="runs/sweep")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    a = p.parse_args()
    grid = json.loads(a.grid)
    jobs = [(n, o, a.out, a.steps) for n, o in grid.items()]
    rows = []
    with mp.get_context("spawn").Pool(min(a.workers, len(jobs))) as pool:
        for name, o, final, best, secs, curve in pool.imap_unordered(_run, jobs):
            rows.append({"name": name, "overrides": o, "final": final, "best": best, "seconds": secs,
                         "curve": curve})
            print(f"{name:<28} final {final:.3f} best {best:.3f} {secs:6.0f} s  {json.dumps(o)}",
                  flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
