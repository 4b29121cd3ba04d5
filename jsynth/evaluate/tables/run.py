"""``jsynth eval --workdir DIR`` for a table model (tvae, ctgan): sample it, then ``evaluate_table``.

The run's config supplies what the command line leaves out: the real data (``--data``), the
``target`` and ``discrete_columns``. By default as many rows are drawn as the real training table
has (the CTGAN paper's protocol: TSTR and TRTR classifiers see equally many rows). The rows go
through ``jsynth sample``'s own writer (``jsynth.table_sampling.sample_table_to_disk``: row i
depends only on (seed, i)) into a temporary folder inside WORKDIR/eval that is removed afterwards,
so the evaluation always sees the newest checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

from jsynth.evaluate.tables.files import evaluate_against_files, real_tables
from jsynth.evaluate.tables.options import TableEvalOptions


def evaluate_table_run(workdir: str, data_spec: str | None = None, *, num: int | None = None,
                       json_path: str | None = None, report_dir: str | None = None,
                       holdout_spec: str | None = None, options: TableEvalOptions | None = None,
                       use_ema: bool = True, progress: bool = True) -> dict:
    """Samples the table model in ``workdir`` and evaluates the rows against the real tables.

    Args:
      workdir: the run's directory (its newest checkpoint).
      data_spec: the real training table (default: the data the run was trained on).
      num: rows to draw (default: as many as the real training table has).
      json_path: result file (default WORKDIR/eval/eval.json); the report folder goes beside it.
      report_dir: report folder (default: beside the JSON).
      holdout_spec: real rows the model never saw (default: a share of the data held out, with a warning).
      options: the knobs; ``target`` and ``discrete_columns`` default to the run's.
      use_ema: sample with the EMA weights where the family keeps them.

    Returns:
      The result dict of ``evaluate_table`` with ``json`` and ``report`` paths.
    """
    from jsynth.errors import InputError
    from jsynth.table_sampling import sample_table_to_disk
    from jsynth.tables import read_table_shards
    from jsynth.workdir import read_config

    config = read_config(workdir)
    options = options or TableEvalOptions()
    options = dataclasses.replace(
        options, target=options.target or config.target,
        discrete_columns=options.discrete_columns or config.discrete_column_names)
    data_spec = data_spec or config.data
    real = real_tables(data_spec, holdout_spec, options)
    num = len(real[0]) if num is None else num
    if num <= 0:
        raise InputError(f"--num must be positive, got {num}")
    eval_dir = os.path.join(workdir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".samples-", dir=eval_dir) as out:
        manifest = sample_table_to_disk(workdir, out, num=num, seed=options.seed, use_ema=use_ema,
                                        progress=progress)
        synthetic = read_table_shards(out)
    source = {"kind": "run", "workdir": os.path.abspath(workdir), "model": config.model, "num": num,
              **{k: manifest[k] for k in ("seed", "checkpoint_step", "dp") if k in manifest}}
    return evaluate_against_files(synthetic, source, data_spec, holdout_spec=holdout_spec,
                                  json_path=json_path or os.path.join(eval_dir, "eval.json"),
                                  report_dir=report_dir, options=options, real=real)
