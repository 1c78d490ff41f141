#!/usr/bin/env bash
# Long control-training runs on a lent GPU machine, several side by side; prints each run's log.
#   bash bench/gpu_runs.sh OUTDIR STEPS 'name:{"field": value, ...}' ...
set -u
out=$1; steps=$2; shift 2
export PYTHONPATH=$PWD/src/reach_core
mkdir -p "$out"
for spec in "$@"; do
  name=${spec%%:*}; json=${spec#*:}
  python3 -c "
import json, torch
torch.set_num_threads(1)
from reach_core.control_training import TrainConfig, train
cfg = TrainConfig(**({'total_steps': $steps, 'device': 'cuda', 'eval_every': 100000} | json.loads('$json')))
train(cfg, '$out/$name', progress=False, log=lambda m: print('$name', m, flush=True))
" > "$out/$name.log" 2>&1 &
done
wait
for spec in "$@"; do name=${spec%%:*}; grep -v -i warn "$out/$name.log" | tail -25; done
