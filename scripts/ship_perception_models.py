"""Copy the perception networks trained on a GPU into the package.

    python scripts/ship_perception_models.py RESULTS_DIR [--sim NAME] [--adapted NAME]
    python scripts/ship_perception_models.py RESULTS_DIR --only sim_dr --sim-dr NAME

RESULTS_DIR holds what a perception sweep wrote (runs/<name>/{model.pt,metrics.json,config.json},
eval.json: formerly bench/gpu_perception.sh; now ``reach sweep ... --out RESULTS_DIR/runs`` with
its ``--eval-dataset``, eval.json moved beside runs/).  The SIM network shipped is the sim_* run
with the lowest simulator test error unless --sim names one; the adapted network is the P75
adaptation of that run (the paper's best balanced setting, chosen before looking at the results)
unless --adapted names another.  Each model is
written to src/reach_core/reach_core/models/perception_{sim,adapted}.pt with a .json giving the
exact training command, seed, training metrics (device, images/s, time to target) and the
evaluation of gpu_perception.sh (Table 1 style), plus the pipeline that produced it.  The
``sim_dr`` role (``perception_sim_dr.pt``) is the SIM stage trained with domain randomisation
that the adapted network was adapted from: the starting point for adapting to your own frames.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from reach_core.perception import PerceptionModel

MODELS = Path(__file__).resolve().parent.parent / "src/reach_core/reach_core/models"
PIPELINE = ("bash bench/gpu_perception.sh /tmp/res .devdata/hifi_train .devdata/hifi_test, with "
            ".devdata/hifi_train = reach data render --source hifi --n 200 --seed 1 --out "
            ".devdata/hifi_train and .devdata/hifi_test = reach data render --source hifi --n 400 "
            "--seed 2 --out .devdata/hifi_test (rendered on the CPU machine, carried to the GPU)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--sim", default=None)
    ap.add_argument("--adapted", default=None)
    ap.add_argument("--sim-dr", default=None,
                    help="the domain-randomised SIM run the adapted network started from")
    ap.add_argument("--adapted-results", default=None,
                    help="take the adapted network from this results folder (another GPU run)")
    ap.add_argument("--pipeline", default=PIPELINE, help="how the results were made (recorded)")
    ap.add_argument("--adapted-pipeline", default=None)
    ap.add_argument("--note", default="", help="recorded as 'selection' in the adapted .json")
    ap.add_argument("--only", choices=("sim", "adapted", "sim_dr"), default=None,
                    help="ship only this role (the other shipped model stays as it is)")
    ap.add_argument("--concurrent-note", default="trained side by side with the other runs of "
                    "gpu_perception.sh on one GPU, so images/s and times are lower than a run alone")
    args = ap.parse_args()
    res = Path(args.results)
    ev = json.loads((res / "eval.json").read_text())
    sims = {k: v for k, v in ev.items() if k.startswith("sim_")}
    sim = args.sim or (min(sims, key=lambda k: sims[k]["sim"]["e_mean"]) if sims else "")
    adapted = args.adapted or f"p75_{sim[4:]}"
    ares = Path(args.adapted_results) if args.adapted_results else res
    jobs = (("sim", sim, res, ev, args.pipeline),
            ("adapted", adapted, ares, json.loads((ares / "eval.json").read_text()),
             args.adapted_pipeline or args.pipeline),
            ("sim_dr", args.sim_dr, res, ev, args.pipeline))
    for role, name, res, ev, pipeline in jobs:
        if (args.only and role != args.only) or not name:
            continue
        run = res / "runs" / name
        model = PerceptionModel.load(run / "model.pt")   # refuse to ship a broken file
        metrics = json.loads((run / "metrics.json").read_text())
        config = json.loads((run / "config.json").read_text())
        dst = MODELS / f"perception_{role}.pt"
        shutil.copyfile(run / "model.pt", dst)
        info = {
            "file": dst.name, "role": role, "run": name,
            "architecture": model.meta.get("config", {}).get("arch", model.arch.arch),
            "arch": vars(model.arch),
            "command": metrics["command"], "seed": config["seed"],
            "adapted_from": config.get("adapt_from"),
            "pipeline": pipeline,
            **({"selection": args.note} if role == "adapted" and args.note else {}),
            "metrics": metrics,
            "evaluation": ev[name],
            "concurrent_note": args.concurrent_note,
        }
        (MODELS / f"perception_{role}.json").write_text(json.dumps(info, indent=2) + "\n")
        print(f"{role}: {name} -> {dst} (sim e {ev[name]['sim']['e_mean']:.4f}, hifi e "
              f"{ev[name].get('hifi_test', {}).get('e_mean', float('nan')):.4f})")


if __name__ == "__main__":
    main()
