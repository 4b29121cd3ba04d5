#!/usr/bin/env bash
# The whole sampling benchmark on a GPU machine, in a few minutes, written as JSON lines.
#
#   bash benchmarks/gpu_sampling.sh [OUT.jsonl]
#
# Needs jax with CUDA (pip install -e . "jax[cuda12]"). Runs dcgan28, dcgan64 and mlpvae at
# batch 1024, 4096 and 16384 in float32 and bfloat16 on 1 and all GPUs: latents are drawn on
# the devices, bfloat16 compute keeps float32 parameters, and samples still count only once
# they are numpy arrays in host memory. The PyTorch side is CPU-only here and is not run.
# Each configuration's JSON line has peak_gflops measured on the same GPUs in the same process.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results/gpu.jsonl}"
mkdir -p "$(dirname "$out")"
python - <<'PY'
import jax, sys
kinds = {d.platform for d in jax.devices()}
if "gpu" not in kinds and "cuda" not in kinds:
    sys.exit(f"no GPU visible to JAX (devices: {jax.devices()}); install jax[cuda12]")
print("GPUs:", jax.devices())
PY
devices="1"
count=$(python -c "import jax; print(len(jax.devices()))")
[ "$count" -gt 1 ] && devices="1,$count"
timeout 280 jsynth bench sampling --arch dcgan28,dcgan64,mlpvae --batch-size 1024,4096,16384 \
  --num 65536 --devices "$devices" --dtype float32,bfloat16 --rounds 3 --json --out "$out"
echo "wrote $out"
