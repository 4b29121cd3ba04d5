"""How long the table transform takes on UCI Adult: read, fit, encode, decode a million rows.

    python benchmarks/adult_csv.py --out data/adult
    flock /tmp/jsynth-measure.lock python benchmarks/tables_transform.py --csv data/adult/adult-train.csv \
        --repeats 3 --json benchmarks/results/tables-transform.jsonl

Prints (and with --json appends) one JSON object per repeat and fit setting: seconds to read the
CSV and infer its columns, to fit the transform (``fit_rows`` rows per continuous column,
``n_jobs`` worker processes), to encode the table, and to decode 1,000,000 rows, both from the full
(N, D) matrix (``decode``: the argmaxes in numpy) and from its ``compact`` form (what a sampler
that runs ``compact`` on the device hands over): the first decode in the process, then the median
of three more (the steady rate of a sampler decoding shard after shard). ``*_cpu_s`` are this process's CPU seconds for the
same steps (worker processes not counted) and ``load_avg_1m`` the VM's load when the row was written:
the wall-clock times only mean something when that is low.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import sklearn.mixture  # noqa: F401  imported before any timing, as the ctgan package imports it

from jsynth.tables import TableTransform, infer_columns, read_table
from jsynth.tables.modes import fit_all_modes


CPU = {}  # what each timed step cost in this process's CPU seconds (robust to other work on the VM)


def timed(fn, name=None):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if name:
        CPU[name] = round(time.process_time() - cpu, 3)
    return out, time.perf_counter() - start


def measure(csv: str, target: str, fit_rows: int, n_jobs: int | None, decode_rows: int) -> dict:
    (frame, columns), read_s = timed(lambda: (lambda f: (f, infer_columns(f, target=target)))(read_table(csv)))
    transform, fit_s = timed(lambda: TableTransform.fit(frame, columns, fit_rows=fit_rows, n_jobs=n_jobs),
                             "fit_cpu_s")
    rows, encode_s = timed(lambda: transform.encode(frame))
    big = np.resize(rows, (decode_rows, rows.shape[1]))  # the table repeated: a million-row matrix
    # The first decode in a process pays one-off costs (pyarrow's kernels, fresh memory); a sampler
    # decodes shard after shard, so the median of the next three is the steady rate.
    back, decode_first_s = timed(lambda: transform.decode(big))
    decode_s = statistics.median(timed(lambda: transform.decode(big), "decode_cpu_s")[1] for _ in range(3))
    compact = transform.compact(big)
    decode_compact_s = statistics.median(
        timed(lambda: transform.decode_compact(compact), "decode_compact_cpu_s")[1] for _ in range(3))
    assert len(back) == decode_rows
    # How many training values lie beyond 4 stds of every mode as fitted, before the transform
    # widens stds to reach them (CTGAN's transform clips these values).
    beyond = {}
    continuous = [c.name for c in columns if c.kind == "continuous"]
    raw = fit_all_modes([frame[name].to_numpy(np.float64) for name in continuous], fit_rows=fit_rows, n_jobs=1)
    for name, modes in zip(continuous, raw):
        x = frame[name].to_numpy(np.float64)[:, None]
        reach = np.abs(x - np.asarray(modes.means)) / (4 * np.asarray(modes.stds))
        beyond[name] = round(100 * float((reach.min(axis=1) > 1).mean()), 3)
    return {"bench": "tables_transform", "csv": os.path.basename(csv), "rows": len(frame),
            "continuous": sum(c.kind == "continuous" for c in columns),
            "categorical": sum(c.kind == "categorical" for c in columns),
            "fit_rows": fit_rows, "n_jobs": n_jobs, "modes": [len(m.means) for m in transform.modes if m],
            "output_dim": transform.output_dim, "read_infer_s": round(read_s, 3), "fit_s": round(fit_s, 3),
            "encode_s": round(encode_s, 3), "decode_rows": decode_rows, "decode_first_s": round(decode_first_s, 3), "decode_s": round(decode_s, 3),
            "decode_compact_s": round(decode_compact_s, 3), "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0], **CPU,
            "compact_dim": transform.compact_dim, "beyond_4std_before_cover_pct": beyond}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default="data/adult/adult-train.csv")
    parser.add_argument("--target", default="income")
    parser.add_argument("--fit-rows", type=int, nargs="+", default=[10_000])
    parser.add_argument("--n-jobs", type=int, nargs="+", default=[0], help="0: the default (automatic)")
    parser.add_argument("--decode-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", help="append the results to this JSON-lines file")
    args = parser.parse_args()
    for _ in range(args.repeats):
        for fit_rows in args.fit_rows:
            for n_jobs in args.n_jobs:
                result = measure(args.csv, args.target, fit_rows, n_jobs or None, args.decode_rows)
                print(json.dumps(result), flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
