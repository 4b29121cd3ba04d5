"""Medians per (bench, arch, devices) of a ``before_after.sh`` run: before, after, after/before.

    python benchmarks/before_after_summary.py OUT.jsonl
"""
import collections
import json
import statistics
import sys


def main(path: str) -> None:
    rates = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.startswith("{"):
                r = json.loads(line)
                rates[(r["bench"], r["arch"], r["devices"], r["checkout"])].append(r["samples_per_s"])
    for bench, arch, devices in sorted({k[:3] for k in rates}):
        before = statistics.median(rates[(bench, arch, devices, "before")])
        after = statistics.median(rates[(bench, arch, devices, "after")])
        print(f"{bench:8} {arch:8} dev {devices}: before {before:10.0f}/s  after {after:10.0f}/s  "
              f"after/before {after / before:.3f}  (n={len(rates[(bench, arch, devices, 'after')])})")


if __name__ == "__main__":
    main(sys.argv[1])
