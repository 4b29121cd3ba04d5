"""UCI Adult as two CSV files with a header row: what `--data csv:...` and the table tests read.

    python benchmarks/adult_csv.py [--src /work/shared/data/adult] [--out data/adult]

Reads adult.data.gz and adult.test.gz (no header; the test file has a junk first line and labels
ending in '.') and writes OUT/adult-train.csv (32,561 rows) and OUT/adult-test.csv (16,281 rows):
column names from adult.names (the label column is ``income``), leading spaces stripped, the test
labels' trailing '.' removed, '?' written as an empty field (a missing value).
"""
from __future__ import annotations

import argparse
import os
import re

import pandas as pd

LABEL = "income"


def column_names(names_path: str) -> list[str]:
    """The 14 attribute names of adult.names ("age: continuous." lines) plus the label."""
    names = []
    with open(names_path) as f:
        for line in f:
            match = re.match(r"^([a-z][a-z-]*):\s", line)
            if match:
                names.append(match.group(1))
    if len(names) != 14:
        raise SystemExit(f"{names_path}: expected 14 attribute lines ('name: ...'), found {len(names)}")
    return names + [LABEL]


def read_split(path: str, names: list[str], test: bool) -> pd.DataFrame:
    frame = pd.read_csv(path, header=None, names=names, skiprows=1 if test else 0,
                        skipinitialspace=True, na_values=["?"], keep_default_na=False)
    frame[LABEL] = frame[LABEL].str.rstrip(".")
    return frame


def convert(src: str, out: str) -> tuple[str, str]:
    """Writes OUT/adult-train.csv and OUT/adult-test.csv; returns their paths."""
    names = column_names(os.path.join(src, "adult.names"))
    os.makedirs(out, exist_ok=True)
    paths = []
    for split, file, test in (("train", "adult.data.gz", False), ("test", "adult.test.gz", True)):
        frame = read_split(os.path.join(src, file), names, test)
        path = os.path.join(out, f"adult-{split}.csv")
        frame.to_csv(path, index=False)
        print(f"{path}: {len(frame)} rows, {len(frame.columns)} columns")
        paths.append(path)
    return paths[0], paths[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default="/work/shared/data/adult", help="folder of adult.data.gz, adult.test.gz, adult.names")
    parser.add_argument("--out", default="data/adult", help="where to write adult-train.csv and adult-test.csv")
    args = parser.parse_args()
    convert(args.src, args.out)


if __name__ == "__main__":
    main()
