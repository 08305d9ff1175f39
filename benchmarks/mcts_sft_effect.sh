#!/usr/bin/env bash
# Stage 1 on CPU with the embedded model: MCTS on 20 bundled cases, SFT on the best
# paths, then the base and the SFT doctor on 30 held-out bundled cases (same patient,
# budget, greedy decoding, same prompt with the worked example). Issue #5.
#
#   bash benchmarks/mcts_sft_effect.sh [WORKDIR]
#   CORRECT_BONUS=0 MIN_REWARD=0.1 bash benchmarks/mcts_sft_effect.sh .bench/sig-only
#
# CORRECT_BONUS (default 2, the reference's) is the search's reward for a right answer;
# MIN_REWARD (default 0.5) also trains on every path reaching it. Prints the summary
# tables (accuracy, questions, fact recall, SIG, format) and writes per-episode figures
# with bootstrap intervals to WORKDIR/effect.json (benchmarks/episode_stats.py).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$here/.bench/mcts-sft}"
bonus="${CORRECT_BONUS:-2}"
min_reward="${MIN_REWARD:-0.5}"
promed="$here/.venv/bin/promed"
py="$here/.venv/bin/python"
mkdir -p "$work"
db="sqlite:///$work/promed.db"
train_ids=$(seq -s, -f 'imedqa-%g' 0 19)
held_ids=$(seq -s, -f 'imedqa-%g' 20 49)
budget=5

"$promed" cases import "$($py -c 'from promed_agents.loader import bundled_sample_path as p; print(p())')" --split sample --db "$db"
time "$promed" mcts --experiment search --case-ids "$train_ids" --iterations 8 --width 8 \
  --max-questions "$budget" --temperature 1.0 --correct-bonus "$bonus" --demonstration \
  --concurrency 10 --db "$db"
time "$promed" train sft --from search --output "$work/sft-doctor" --epochs 3 \
  --learning-rate 2e-5 --batch-size 4 --min-reward "$min_reward" --db "$db"
for doctor in "local:smollm2" "local:$work/sft-doctor"; do
  name="heldout-$(basename "${doctor#local:}")"
  time "$promed" consult --experiment "$name" --case-ids "$held_ids" --doctor "$doctor" \
    --max-questions "$budget" --temperature 0 --demonstration --concurrency 15 --db "$db"
done
"$py" "$here/benchmarks/episode_stats.py" --db "$db" heldout-smollm2 heldout-sft-doctor \
  | tee "$work/effect.json"
