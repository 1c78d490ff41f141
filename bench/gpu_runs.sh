#!/usr/bin/env bash
# Control-training runs side by side on a lent GPU machine (one process each), with a deadline.
#   bash bench/gpu_runs.sh OUTDIR STEPS DEADLINE_S 'name:{"field": value, ...}' ...
# Each spec overrides TrainConfig fields (device defaults to cuda), after those in $BASE (JSON).  Every run logs to
# OUTDIR/NAME.log; when all end (or at the deadline) the logs are printed and gathered into
# OUTDIR/all.log, and the runs' best.pt, model.pt and metrics.json are packed into OUTDIR/runs.tar.gz.
set -u
out=$1; steps=$2; deadline=$3; shift 3
export PYTHONPATH=$PWD/src/reach_core PYTHONUNBUFFERED=1
mkdir -p "$out/runs"
python3 -c "import matplotlib" 2>/dev/null || echo "note: no matplotlib here, learning_curve.png is skipped"
for spec in "$@"; do
  name=${spec%%:*}; json=${spec#*:}
  timeout "$deadline" python3 -c "
import json, os, torch
torch.set_num_threads(1)
import reach_core.control_training as ct
try:
    import matplotlib  # noqa: F401
except ImportError:
    ct.plot_learning_curves = lambda *a, **k: None
cfg = ct.TrainConfig(**({'total_steps': $steps, 'device': 'cuda', 'eval_every': 100000} | json.loads(os.environ.get('BASE') or '{}') | json.loads('$json')))
ct.train(cfg, '$out/runs/$name', progress=False, log=lambda m: print('$name', m, flush=True))
" > "$out/$name.log" 2>&1 &
done
wait
for spec in "$@"; do name=${spec%%:*}; grep -v -i warn "$out/$name.log" | tail -12; done
for spec in "$@"; do name=${spec%%:*}; cat "$out/$name.log"; rm "$out/$name.log"; done > "$out/all.log"
(cd "$out" && tar czf runs.tar.gz --exclude='replay*' --exclude='checkpoint.pt' runs && rm -rf runs)
