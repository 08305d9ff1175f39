#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one run (under 8 minutes on an H100/H200), in order:
# Shapley scoring throughput, rollouts (both for SmolLM2-135M and Qwen2.5-0.5B shapes built
# from configs: no weights, no network), and one SIG-GRPO step against one stock TRL
# GRPOTrainer step on the same batch. Parts 1-2 need torch and transformers only; part 3
# also needs trl, the project and their dependencies, which a bare GPU machine lacks:
# fetch them here with benchmarks/gpu_wheels.py DIR, in parts of at most 60 MiB (one call
# carries 64), and install each part there with --wheels DIR/N into .gpu-venv, a virtual
# environment that sees the machine's torch and stays while the machine stays warm.
#   python benchmarks/gpu_wheels.py .gpu-wheels --python-version 3.11   # here
#   benchmarks/gpu_check.sh --wheels .gpu-wheels/1 --install-only       # there, part 1
#   benchmarks/gpu_check.sh --wheels .gpu-wheels/2                      # last part, run
#   benchmarks/gpu_check.sh --dry-run                  # CPU, tiny sizes: checks it runs
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python}"
out="${OUT:-.}/gpu_check.json"
args=()
wheels=""
install_only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    --install-only) install_only=1; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
start=$(date +%s)
venv="$here/../.gpu-venv"
if [ -n "$wheels" ]; then
  [ -x "$venv/bin/python" ] || "$python" -m venv --system-site-packages "$venv"
  # --no-deps: the parts hold exactly what the machine lacks (gpu_wheels.py)
  "$venv/bin/python" -m pip install -q --no-index --no-deps "$wheels"/*.whl >&2
  echo "installed $(ls "$wheels"/*.whl | wc -l) wheels from $wheels into .gpu-venv" >&2
  [ -z "$install_only" ] || exit 0
fi
[ ! -x "$venv/bin/python" ] || python="$venv/bin/python"
left=$((480 - ($(date +%s) - start)))
exec timeout "$left" "$python" "$here/gpu_check.py" --out "$out" ${args[@]+"${args[@]}"}
