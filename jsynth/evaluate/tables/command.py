"""``jsynth eval`` for tables: which evaluations are table ones, and what the command prints.

A table evaluation is ``--samples`` with ``--data`` naming a table (``csv:``/``parquet:`` or a
.csv/.parquet path), or ``--workdir`` of a table model (tvae, ctgan: known from its config).
"""
from __future__ import annotations

import json
import os

from jsynth.evaluate.tables.files import evaluate_table_files, is_table_input
from jsynth.evaluate.tables.options import TableEvalOptions, with_overrides


def is_table_eval(samples: str | None, workdir: str | None, data_spec: str | None) -> bool:
    """True when ``jsynth eval`` should measure tables rather than images."""
    if workdir:
        from jsynth.table_sampling import is_table_run
        from jsynth.workdir import config_path

        # No config: not a run at all; the image path says so in its own words.
        return os.path.exists(config_path(workdir)) and is_table_run(workdir)
    return bool(samples) and is_table_input(data_spec)


def table_eval_command(*, samples: str | None, workdir: str | None, data_spec: str | None,
                       holdout_spec: str | None, json_path: str | None, report_dir: str | None, num: int | None,
                       seed: int, assignments: list[str]) -> str:
    """Runs the evaluation; returns what the command prints: a summary when a JSON file is written
    (always for --workdir: WORKDIR/eval/eval.json by default), else the JSON itself."""
    from jsynth.evaluate.tables.suite import summary

    options = with_overrides(TableEvalOptions(seed=seed), assignments)
    if workdir:
        from jsynth.evaluate.tables.run import evaluate_table_run

        result = evaluate_table_run(workdir, data_spec, num=num, json_path=json_path, report_dir=report_dir,
                                    holdout_spec=holdout_spec, options=options)
        return summary(result)
    result = evaluate_table_files(samples, data_spec, holdout_spec=holdout_spec, json_path=json_path,
                                  report_dir=report_dir, options=options)
    return summary(result) if json_path else json.dumps(result, indent=1, default=str)
