#!/bin/bash
# Issue 13's measurement: conditional MLP VAE under DP-SGD on MNIST, epsilon = 10, delta = 1e-5,
# 15-minute wall-clock budget (calibrated to --steps 700; the time limit may stop it earlier, and
# the dp object then reports the epsilon actually spent), then jsynth eval. Run from the repo root.
set -e
OUT=${OUT:-benchmarks/results/dp-mnist}
EPS=${EPS:-10}
W=${W:-/tmp/dp-cvae-eps$EPS}
rm -rf "$W"
/usr/bin/time -f "train_wall_s %e" flock /tmp/jsynth-measure.lock jsynth train --model mlpvae --conditional \
  --data mnist:/work/mnist --workdir "$W" --batch-size 256 --steps 700 --time-limit 15m \
  --set width=128 --set dp_epsilon=$EPS --set log_every=50 --set progress=false --set sample_every=100000
/usr/bin/time -f "eval_wall_s %e" flock /tmp/jsynth-measure.lock jsynth eval --workdir "$W" \
  --data mnist:/work/mnist --json "$OUT/cvae-eps$EPS.eval.json" --set nll_rows=0
cp "$W/metrics.jsonl" "$OUT/cvae-eps$EPS.metrics.jsonl"
