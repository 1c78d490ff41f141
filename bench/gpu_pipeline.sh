#!/usr/bin/env bash
# The full pipeline (bench_end2end.py --pipeline) on one lent GPU, in parts: each device call may
# run 10 minutes at most and brings back 8 files, so each part packs its products (checkpoints and
# the replay buffer left out) into one archive, and the next part resumes from it.
#
#   bash bench/gpu_pipeline.sh PART PIPE_DIR HIFI_TRAIN PACK
#
#   PART 1: SIM perception on the GPU | control on the CPU cores, side by side (~520 s)
#   PART 2: adaptation (P75) and fine-tuning (EE2-FT) (~430 s), resuming PIPE_DIR
#   PART 3: Table 3 (on a machine with MuJoCo for the hifi rows; hours on 2 CPU cores)
# PIPE_DIR holds the products of the earlier parts (unpack the previous PACK there); PACK is the
# archive written at the end (e.g. $OUT/pipe.tgz on the lent machine). Knobs (environment):
# SIM_BUDGET (500 s), CONTROL_THREADS (4), ADAPT_BUDGET (150 s), FT_STEPS (1200), FT_THREADS (8),
# TRIALS (400), HIFI_TRIALS (60), DEVICE (cuda: parts 1 and 2; cpu runs them on a machine without
# a GPU), TINY (1: the pipeline's --tiny sizes, a functional check on a CPU, all parts on the CPU).
# The stage times add up in PIPE_DIR/pipeline_times.json.
set -euo pipefail
PART="${1:?PART 1, 2 or 3}"; PIPE="${2:?PIPE_DIR}"; HIFI="${3:?HIFI_TRAIN}"; PACK="${4:?PACK}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT/src/reach_core${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
case "$PART" in
  1) stop=(--stop-after sim) ;;
  2) stop=(--resume --stop-after finetune) ;;
  3) stop=(--resume) ;;
  *) echo "PART must be 1, 2 or 3" >&2; exit 2 ;;
esac
dev="${DEVICE:-cuda}"; [ "$PART" = 3 ] && dev=cpu
tiny=(); [ "${TINY:-0}" = 1 ] && { tiny=(--tiny); dev=cpu; }
status=0
python3 "$ROOT/bench/bench_end2end.py" --pipeline --device "$dev" --out "$PIPE" --hifi-train "$HIFI" \
  --sim-budget "${SIM_BUDGET:-500}" --control-threads "${CONTROL_THREADS:-4}" \
  --adapt-budget "${ADAPT_BUDGET:-150}" --ft-steps "${FT_STEPS:-1200}" --ft-threads "${FT_THREADS:-8}" \
  --trials "${TRIALS:-400}" --hifi-trials "${HIFI_TRIALS:-60}" "${stop[@]}" ${tiny[@]+"${tiny[@]}"} || status=$?
tar czf "$PACK" --exclude='checkpoint*' --exclude='replay*' -C "$(dirname "$PIPE")" "$(basename "$PIPE")"
echo "[gpu_pipeline part $PART] packed $PACK ($(du -h "$PACK" | cut -f1)); exit $status"
exit "$status"
