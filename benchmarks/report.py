"""Turns the JSON lines of ``side_by_side.py`` into the README's table and plot.

    python benchmarks/report.py benchmarks/results/cpu.jsonl --png benchmarks/results/cpu.png

Prints a Markdown table (one row per contender, grouped by benchmark, architecture and batch
size, with each jsynth row's ratio to the best PyTorch variant of its group in float32) and the
summary ratios; with ``--png``, draws samples/s per contender as bars (needs matplotlib, part of
the ``bench`` extra).
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict


def load(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _group(r: dict) -> tuple:
    return (r["bench"].removesuffix("-summary"), r["arch"], r["batch_size"])


def table(records: list[dict]) -> str:
    rows = [r for r in records if not r["bench"].endswith("summary")]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_group(r) + (r["num"],)].append(r)
    lines = ["| bench | arch | batch | framework | mode | dtype | dev | samples/s | vs best torch fp32 | "
             "compile s | GFLOP/s exact | mfu exact |",
             "|---|---|--:|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for key, group in groups.items():
        torch32 = [r["samples_per_s"] for r in group if r["framework"] == "torch" and r["dtype"] == "float32"]
        best = max(torch32) if torch32 else None
        for r in sorted(group, key=lambda r: -r["samples_per_s"]):
            ratio = f"{r['samples_per_s'] / best:.2f}x" if best and r["framework"] == "jsynth" else ""
            lines.append(f"| {r['bench']} | {r['arch']} | {r['batch_size']} | {r['framework']} | {r['mode']} | "
                         f"{r['dtype']} | {r['devices']} | {r['samples_per_s']:.0f} | {ratio} | "
                         f"{r['compile_s']:.1f} | {r['achieved_gflops_exact']:.1f} | {r['mfu_exact']:.2f} |")
    return "\n".join(lines)


def summaries(records: list[dict]) -> str:
    out = []
    for r in records:
        if not r["bench"].endswith("summary"):
            continue
        for label in ("float32", "fastest"):
            if label in r:
                v = r[label]
                out.append(f"- {r['bench'].removesuffix('-summary')} {r['arch']} b{r['batch_size']} {label}: "
                           f"jsynth {v['jsynth']} {v['jsynth_samples_per_s']:.0f}/s vs PyTorch {v['torch']} "
                           f"{v['torch_samples_per_s']:.0f}/s = **{v['ratio']:.2f}x** "
                           f"(jsynth exact-FLOP mfu {v['jsynth_mfu_exact']:.2f})")
    return "\n".join(out)


def plot(records: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if not r["bench"].endswith("summary") and r["arch"] != "mlpvae"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_group(r) + (r["num"],)].append(r)
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 4.6), squeeze=False)
    for ax, (key, group) in zip(axes[0], groups.items()):
        group = sorted(group, key=lambda r: (r["framework"], -r["samples_per_s"]))
        labels = [f"{'jsynth' if r['framework'] == 'jsynth' else 'torch'} {r['mode']}"
                  f"{' bf16' if r['dtype'] == 'bfloat16' else ''}{' d' + str(r['devices']) if r['framework'] == 'jsynth' else ''}"
                  for r in group]
        colors = ["tab:blue" if r["framework"] == "jsynth" else "tab:orange" for r in group]
        ax.bar(range(len(group)), [r["samples_per_s"] for r in group], color=colors)
        ax.set_xticks(range(len(group)), labels, rotation=70, ha="right", fontsize=7)
        ax.set_title(f"{key[0]} {key[1]} b{key[2]}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    axes[0][0].set_ylabel("samples/s (train: images/s), median")
    fig.suptitle("jsynth (blue) vs PyTorch (orange), 2-core CPU, end to end to host numpy", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--png")
    args = parser.parse_args(argv)
    records = load(args.results)
    print(table(records))
    print()
    print(summaries(records))
    if args.png:
        plot(records, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
