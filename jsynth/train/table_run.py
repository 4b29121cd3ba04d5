"""What training a table model adds to the loop: the table as the loop's data set, the fitted
transform kept in the workdir, and each step's batch of encoded rows.

The loop calls ``load_training_data`` (images or a table, refusing a model of the other kind) and
``batch_source``: None for images (the loop's own batches), else a function ``step -> batch``,
a pure function of (seed, step) like the image batches, so resumed runs see the same rows:

  uniform batches (TVAE): ``jsynth.data.batch_indices`` rows, with the target's labels;
  training-by-sampling (CTGAN, ``family.training_by_sampling``): ``ConditionSampler``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import numpy as np

from jsynth import data as jdata
from jsynth.atomic import write_atomic
from jsynth.configs import TABLE_FAMILIES, TrainConfig
from jsynth.families.table_shape import TableShape, table_shape, transform_digest

TRANSFORM_FILE = "transform.json"


def transform_path(workdir: str) -> str:
    return os.path.join(workdir, TRANSFORM_FILE)


@dataclasses.dataclass(frozen=True, eq=False)
class TableDataset:
    """A ``jsynth.tables.TableData`` as the loop's data set: ``image_shape`` is the TableShape
    the family is built for (and what the checkpoint metadata records)."""

    table: object  # jsynth.tables.TableData
    image_shape: TableShape

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def labels(self):
        return self.table.labels

    @property
    def num_classes(self) -> int:
        return self.table.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.table.class_names

    @property
    def rows(self) -> np.ndarray:
        return self.table.rows

    def __len__(self) -> int:
        return len(self.table)

    def content_digest(self) -> str:
        return self.table.content_digest()


def read_transform(workdir: str):
    """The TableTransform saved in a workdir, or None."""
    from jsynth.tables import TableTransform
    path = transform_path(workdir)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return TableTransform.from_json(json.load(f))


def load_training_data(config: TrainConfig, workdir: str | None = None):
    """The data ``config.data`` names: a ``jsynth.data.Dataset`` of images or a ``TableDataset``.

    A table run resumed in ``workdir`` encodes with the transform saved there (not a refit).

    Raises:
      DataError: a table model on image data, or an image model on a table.
    """
    from jsynth.tables import is_table_spec, load_table_data

    is_table = is_table_spec(config.data)
    if config.family not in TABLE_FAMILIES:
        if is_table:
            raise jdata.DataError(f"--data {config.data} is a table, but --model {config.model} trains on "
                                  "images: use --model tvae or --model ctgan for tables")
        return jdata.load(config.data, config.image_size)
    if not is_table:
        raise jdata.DataError(f"--model {config.model} trains on tables, but --data {config.data} is not one: "
                              "give --data csv:PATH (a header row) or --data parquet:PATH "
                              "(for images use mlpgan, dcgan, mlpvae or convvae)")
    transform = read_transform(workdir) if workdir else None
    table = load_table_data(config.data, config.discrete_column_names or None, config.target,
                            config.max_modes, config.seed, transform=transform)
    return TableDataset(table, table_shape(table.transform, table.rows, config.target))


def batch_source(setup, workdir: str | None, rows: slice) -> Callable[[int], dict] | None:
    """``step -> batch`` for a table run (None for images); saves the transform in the workdir
    (None: nowhere).

    ``rows``: this process's rows of the global batch (``jsynth.data.process_rows``).
    """
    dataset, config, family = setup.dataset, setup.config, setup.family
    if not isinstance(dataset, TableDataset):
        return None
    import jax
    if workdir is not None and jax.process_index() == 0 and not os.path.exists(transform_path(workdir)):
        write_atomic(transform_path(workdir), json.dumps(dataset.table.transform.to_json()))
    data, labels, n = dataset.rows, dataset.labels, len(dataset)
    if getattr(family, "training_by_sampling", False) and dataset.image_shape.spans:
        sampler = ConditionSampler(data, dataset.image_shape.spans)

        def by_sampling(step: int) -> dict:
            rng = np.random.default_rng((config.seed, step))
            cond_d, index = sampler.draw(rng, config.batch_size)
            cond_g, _ = sampler.draw(rng, config.batch_size)
            return {"rows": data[index[rows]], "cond_d": cond_d[rows], "cond_g": cond_g[rows]}

        return by_sampling

    def uniform(step: int) -> dict:
        index = jdata.batch_indices(step, config.batch_size, n, config.seed)[rows]
        batch = {"rows": data[index]}
        if setup.num_classes:
            batch["label"] = labels[index]
        if getattr(family, "training_by_sampling", False):  # a table without discrete columns
            batch["cond_d"] = batch["cond_g"] = np.zeros(len(index), np.int32)
        return batch

    return uniform


class ConditionSampler:
    """CTGAN's training-by-sampling (Xu et al. 2019) on the host, from per-category row lists.

    ``draw(rng, n)``: for each of n rows a discrete column uniformly, one of its categories with
    probability proportional to log(1 + its count), and a real row holding that category. Returns
    (condition (n,) int32: index into the conditional vector, row indices (n,)).
    """

    def __init__(self, data: np.ndarray, spans):
        count, widest = len(spans), max(width for _, width in spans)
        self.offsets = np.cumsum([0] + [width for _, width in spans])[:-1].astype(np.int32)
        self.widths = np.asarray([width for _, width in spans], np.int64)
        self.order = np.empty((count, len(data)), np.int32)   # rows sorted by category, per column
        self.first = np.zeros((count, widest), np.int64)      # where each category's rows start there
        self.counts = np.zeros((count, widest), np.int64)
        self.cumulative = np.ones((count, widest), np.float64)  # of the log-frequency probabilities
        for i, (start, width) in enumerate(spans):
            category = np.argmax(data[:, start:start + width], axis=1)
            self.order[i] = np.argsort(category, kind="stable")
            counts = np.bincount(category, minlength=width)
            self.counts[i, :width] = counts
            self.first[i, :width] = np.cumsum(counts) - counts
            weights = np.log1p(counts.astype(np.float64))
            self.cumulative[i, :width] = np.cumsum(weights / weights.sum())

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        column = rng.integers(0, len(self.widths), n)
        u = rng.random(n)
        category = np.minimum((self.cumulative[column] <= u[:, None]).sum(axis=1), self.widths[column] - 1)
        counts = self.counts[column, category]
        pick = self.first[column, category] + np.minimum((rng.random(n) * counts).astype(np.int64), counts - 1)
        return (self.offsets[column] + category).astype(np.int32), self.order[column, pick]


def check_transform(workdir: str, shape: TableShape):
    """The workdir's transform, checked against the one the model was trained with (its digest)."""
    from jsynth.workdir import WorkdirError
    transform = read_transform(workdir)
    if transform is None:
        raise WorkdirError(f"{transform_path(workdir)} is missing: the table transform this model "
                           "decodes with was removed; restore it (or retrain)")
    if shape.transform_digest and transform_digest(transform) != shape.transform_digest:
        raise WorkdirError(f"{transform_path(workdir)} is not the transform {workdir} was trained with "
                           "(its digest differs from the checkpoint's); restore the original file")
    return transform
