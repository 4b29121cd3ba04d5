#!/usr/bin/env bash
# Side-by-side A/B of two checkouts of jsynth on the same machine, alternating run by run:
#   bash benchmarks/before_after.sh OLD_CHECKOUT NEW_CHECKOUT ROUNDS OUT.jsonl
# Each round runs `jsynth bench sampling` (dcgan28, dcgan64, mlpvae at batch 256) and
# `jsynth bench train` (dcgan28, batch 256) once per checkout, old first on odd rounds and new
# first on even ones, so drift on a shared machine hits both alike. Each record gets a "checkout"
# key; compare medians with `python benchmarks/before_after_summary.py OUT.jsonl`.
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2") rounds=$3 out=$(realpath "$4")
: > "$out"
# From a neutral directory: `python -m` puts the working directory first on sys.path, where a
# checkout's jsynth/ would shadow the one PYTHONPATH names.
cd "$(mktemp -d)"
run() {  # checkout label
  PYTHONPATH="$1" python -m jsynth.cli bench sampling --arch dcgan28,dcgan64,mlpvae --batch-size 256 \
      --rounds 1 --json | sed "s/^{/{\"checkout\": \"$2\", /" >> "$out"
  PYTHONPATH="$1" python -m jsynth.cli bench train --batch-size 256 --steps 2 --rounds 1 --json \
      | sed "s/^{/{\"checkout\": \"$2\", /" >> "$out"
}
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then run "$old" before; run "$new" after; else run "$new" after; run "$old" before; fi
done
