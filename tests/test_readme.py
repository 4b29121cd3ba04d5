"""The README stays true: its Python snippet runs as written and its commands parse."""
import os
import re
import runpy
import shlex

import numpy as np
import pytest

from jsynth.cli import build_parser

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def readme() -> str:
    with open(README) as f:
        return f.read()


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```\n(.*?)```", readme(), re.S).group(1).strip().splitlines()
    assert first_block == ['pip install -e ".[dev]" && jsynth quickstart', "pytest"]


@pytest.mark.slow  # trains, samples and evaluates a model (~40 s)
def test_readme_python_snippet_runs(tmp_path, tmp_path_factory, capsys, monkeypatch):
    snippet = re.search(r"```python\n(.*?)```", readme(), re.S).group(1)
    assert re.findall(r"^(?:from|import) (\S+)", snippet, re.M) == ["jax", "optax", "jsynth"]  # no deep imports
    path = tmp_path / "snippet.py"
    path.write_text(snippet)
    monkeypatch.chdir(tmp_path)
    # The digits' feature network as test_eval trained it (same data, split and recipe): not again.
    monkeypatch.setenv("JSYNTH_CACHE", str(tmp_path_factory.getbasetemp() / "jsynth-cache"))
    result = runpy.run_path(str(path), run_name="__main__")["result"]
    assert "(10, 8, 8, 1) [3 3 3 3 3 3 3 3 3 3]" in capsys.readouterr().out
    # The shipped evaluator ran on the shipped sampler's output: trained VAE digits are recognisable.
    assert np.isfinite(result["fd"]) and result["tstr_accuracy"] > 0.5


@pytest.mark.parametrize("command", [
    "train --model dcgan --data mnist:/data/mnist --conditional --batch-size 1024 --steps 20000 "
    "--workdir /shared/runs/dcgan --distributed",
    "train --coordinator host0.example:1234 --num-processes 4 --process-id 0 --model dcgan "
    "--data folder:/data/faces --set image_size=64 --workdir /shared/runs/faces",
    "sample --workdir runs/x --num 10 --out out --format png --label 3",
])
def test_readme_cluster_commands_parse(command):
    args = build_parser().parse_args(shlex.split(command))
    assert args.command == command.split()[0]
