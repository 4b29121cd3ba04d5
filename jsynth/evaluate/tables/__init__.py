"""Evaluation of synthetic tables: maths apart from plumbing, one small file per metric family.

Maths: the marginals (``shapes``: KS / TV complements), the pairwise relations (``trends``:
correlation and contingency similarity), utility (``utility``: TSTR/TRTR with four scikit-learn
classifiers) and privacy (``privacy``: the image side's DCR / NNDR / membership inference in the
space of ``encoding``). Plumbing: tables checked and put in the same terms (``frames``), the knobs
(``options``), the suite (``suite.evaluate_table``), files in and out (``files``), a trained table
model sampled then evaluated (``run``), the ``jsynth eval`` glue (``command``) and the report folder
(``report``).
"""
from jsynth.evaluate.tables.frames import TableEvalError
from jsynth.evaluate.tables.options import TableEvalOptions
from jsynth.evaluate.tables.suite import evaluate_table, summary
from jsynth.evaluate.tables.files import evaluate_table_files, write_outputs
from jsynth.evaluate.tables.run import evaluate_table_run

__all__ = ["TableEvalError", "TableEvalOptions", "evaluate_table", "evaluate_table_files", "evaluate_table_run",
           "summary", "write_outputs"]
