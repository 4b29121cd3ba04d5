"""jsynth's table models beside the reference ``ctgan`` package, in one run, on one CSV (README, "Tables").

    python benchmarks/adult_csv.py --out data/adult
    flock /tmp/jsynth-measure.lock python benchmarks/tabular_vs_ctgan.py --csv data/adult/adult-train.csv \
        --target income --ctgan-python /path/to/venv-with-ctgan/bin/python

ctgan 0.12.1 is BUSL-licensed: install it apart (``pip install -e .[tabular-bench]`` in a separate
virtual environment: it pulls torch and pins pandas < 3), and point --ctgan-python at that interpreter.
Writes the records of both tools and the ratios to benchmarks/results/tabular_vs_ctgan.jsonl.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--target", default="income")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--steps-per-call", type=int, default=1)
    parser.add_argument("--ctgan-python", default=sys.executable)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "tabular_vs_ctgan.jsonl"))
    args = parser.parse_args()

    from jsynth.cpu_setup import configure_cpu
    configure_cpu()
    from jsynth.bench.tabular import bench_tabular

    ours = bench_tabular(f"csv:{args.csv}", target=args.target, epochs=args.epochs, rows=args.rows,
                         steps_per_call=args.steps_per_call, emit=lambda r: print(json.dumps(r), flush=True))
    reference = subprocess.run([args.ctgan_python, os.path.join(HERE, "ctgan_reference.py"), "--csv", args.csv,
                                "--epochs", str(args.epochs), "--rows", str(args.rows)],
                               capture_output=True, text=True, check=True).stdout
    theirs = [json.loads(line) for line in reference.splitlines() if line.startswith("{")]
    for record in theirs:
        print(json.dumps(record), flush=True)

    def find(records, what, model=None):
        return next(r for r in records if r["what"] == what and r.get("model") == model)

    ratios = {"transform_fit": find(theirs, "transform")["fit_s"] / find(ours, "transform")["fit_s"]}
    for model in ("ctgan", "tvae"):
        ratios[f"{model}_epoch"] = find(theirs, "train", model)["epoch_s"] / find(ours, "train", model)["epoch_s"]
        ratios[f"{model}_sample"] = find(theirs, "sample", model)["sample_s"] / find(ours, "sample", model)["sample_s"]
    summary = {"bench": "tabular", "what": "speedup (ctgan seconds / jsynth seconds)", "csv": args.csv,
               "epochs": args.epochs, "rows": args.rows, **{k: round(v, 2) for k, v in ratios.items()}}
    print(json.dumps(summary))
    with open(args.out, "a") as f:
        for record in ours + theirs + [summary]:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
