#!/bin/bash
# Issue 13's measurement: conditional MLP VAE under DP-SGD on MNIST, epsilon = EPS (10), delta = 1e-5,
# then jsynth eval. The wall-clock budget is BUDGET_S (900 = 15 minutes) or less when the shared
# measurement lock is only free later and the run must end by END_EPOCH (unix seconds); the steps
# the noise is calibrated to are planned from that budget at ~1.3 s per DP step (measured on this
# 2-core VM), and the time limit may stop training earlier: the dp object then reports the epsilon
# actually spent. Run from the repo root.
set -e
OUT=${OUT:-benchmarks/results/dp-mnist}
EPS=${EPS:-10}
DELTA=${DELTA:-1e-5}  # the delta (the default for MNIST's n = 60,000 would be 1/(10 n) = 1.7e-6)
BUDGET_S=${BUDGET_S:-900}
END_EPOCH=${END_EPOCH:-0}
W=${W:-/tmp/dp-cvae-eps$EPS}
mkdir -p "$OUT"
rm -rf "$W"
export OUT EPS DELTA BUDGET_S END_EPOCH W
flock /tmp/jsynth-measure.lock bash -c '
  budget=$BUDGET_S
  if [ "$END_EPOCH" -gt 0 ]; then left=$(( END_EPOCH - $(date +%s) )); [ $left -lt $budget ] && budget=$left; fi
  if [ $budget -lt 180 ]; then echo "skipped: only $budget s left before END_EPOCH"; exit 0; fi
  steps=$(( budget * 10 / 13 ))
  echo "budget_s $budget steps $steps start $(date -u +%H:%M:%S)"
  /usr/bin/time -f "train_wall_s %e" jsynth train --model mlpvae --conditional --data mnist:/work/mnist \
    --workdir "$W" --batch-size 256 --steps $steps --time-limit ${budget}s \
    --set width=128 --set dp_epsilon=$EPS --set dp_delta=$DELTA --set log_every=50 --set progress=false --set sample_every=100000
  /usr/bin/time -f "eval_wall_s %e" jsynth eval --workdir "$W" --data mnist:/work/mnist \
    --json "$OUT/cvae-eps$EPS.eval.json" --set nll_rows=0
  cp "$W/metrics.jsonl" "$OUT/cvae-eps$EPS.metrics.jsonl"'
