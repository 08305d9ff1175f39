#!/usr/bin/env bash
# Stage 2 on CPU with the embedded model: SIG-GRPO from graph rollouts on 20 bundled
# cases, then the starting model and the trained doctor on 30 held-out bundled cases
# (same patient, budget, greedy decoding, same prompt with the worked example). Issue #6.
#
#   bash benchmarks/grpo_effect.sh [WORKDIR]
#   STEPS=40 GROUP=4 LR=2e-5 SEED=0 bash benchmarks/grpo_effect.sh .bench/grpo
#   GRPO_ARGS="--answer-weight 0" bash benchmarks/grpo_effect.sh .bench/grpo-sig-only
#
# GRPO_ARGS are passed on to `promed train grpo` (reward weights, --lora, --beta, ...).
# Prints the summary tables (accuracy, questions, fact recall, SIG, format) and writes
# per-episode figures with bootstrap intervals to WORKDIR/effect.json
# (benchmarks/episode_stats.py); the training curve is WORKDIR/grpo-doctor/training_log.jsonl.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$here/.bench/grpo}"
steps="${STEPS:-40}"
group="${GROUP:-4}"
lr="${LR:-2e-5}"
seed="${SEED:-0}"
extra="${GRPO_ARGS:-}"
promed="$here/.venv/bin/promed"
py="$here/.venv/bin/python"
mkdir -p "$work"
db="sqlite:///$work/promed.db"
train_ids=$(seq -s, -f 'imedqa-%g' 0 19)
held_ids=$(seq -s, -f 'imedqa-%g' 20 49)
budget=3

"$promed" cases import "$($py -c 'from promed_agents.loader import bundled_sample_path as p; print(p())')" --split sample --db "$db"
time "$promed" train grpo --output "$work/grpo-doctor" --case-ids "$train_ids" \
  --num-generations "$group" --max-steps "$steps" --learning-rate "$lr" --seed "$seed" \
  --max-questions "$budget" --demonstration --db "$db" $extra
for doctor in "local:smollm2" "local:$work/grpo-doctor"; do
  name="heldout-$(basename "${doctor#local:}")"
  time "$promed" consult --experiment "$name" --case-ids "$held_ids" --doctor "$doctor" \
    --max-questions "$budget" --temperature 0 --demonstration --concurrency 15 --db "$db"
done
"$py" "$here/benchmarks/episode_stats.py" --db "$db" heldout-smollm2 heldout-grpo-doctor \
  | tee "$work/effect.json"
