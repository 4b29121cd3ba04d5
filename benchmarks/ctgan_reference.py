"""Times the reference ``ctgan`` package (0.12.1, BUSL: installed only through the optional
``tabular-bench`` extra, never imported by jsynth) on one CSV: its transform fit, CTGAN and TVAE
seconds per epoch, and sampling. Prints one JSON object per line. Run by benchmarks/tabular_vs_ctgan.py.

    python benchmarks/ctgan_reference.py --csv data/adult/adult-train.csv --epochs 2 --rows 1000000
"""
import argparse
import json
import time

import pandas as pd
import torch
from ctgan import CTGAN, TVAE
from ctgan.data_transformer import DataTransformer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frame = pd.read_csv(args.csv)
    discrete = [c for c in frame.columns if frame[c].dtype == object]

    def emit(**fields):
        print(json.dumps({"bench": "tabular", "tool": "ctgan-0.12.1", "threads": args.threads, **fields}), flush=True)

    start = time.perf_counter()
    transformer = DataTransformer()
    transformer.fit(frame, discrete)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    transformer.transform(frame)
    encode_s = time.perf_counter() - start
    emit(what="transform", fit_s=round(fit_s, 3), encode_s=round(encode_s, 3))
    for name, cls in (("ctgan", CTGAN), ("tvae", TVAE)):
        # Seconds per epoch = the difference of a 1-epoch and a (1 + epochs)-epoch fit over epochs: each
        # fit refits the transform, whose time varies too much on a shared machine to subtract.
        times = []
        for epochs in (1, 1 + args.epochs):
            model = cls(epochs=epochs, batch_size=args.batch_size)
            start = time.perf_counter()
            model.fit(frame, discrete)
            times.append(time.perf_counter() - start)
        emit(what="train", model=name, batch_size=args.batch_size, epochs=args.epochs,
             fit_1_epoch_s=round(times[0], 3), fit_s=round(times[1], 3),
             epoch_s=round((times[1] - times[0]) / args.epochs, 3))
        start = time.perf_counter()
        sampled = model.sample(args.rows)
        emit(what="sample", model=name, rows=len(sampled), sample_s=round(time.perf_counter() - start, 3))


if __name__ == "__main__":
    main()
