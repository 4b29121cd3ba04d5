"""From a config and the data's size to the DP-SGD plan: noise, sampling rate, budget, records.

What the loop calls (``resolve_dp``, ``private_family``, ``poisson_batches``, ``dp_record``) so
that its own edits stay one line each. ``dp_epsilon`` alone: the noise multiplier is calibrated
so that ``steps`` steps spend it (PLD); the calibrated value is written to config.json and kept
on resume (``jsynth.workdir.keep_schedule``), so a resumed run adds the same noise and draws the
same batches. ``dp_noise_multiplier`` alone: epsilon is only reported.
"""
from __future__ import annotations

import dataclasses
import math

from jsynth.errors import UserError
from jsynth.privacy import accounting
from jsynth.privacy.fields import dp_enabled
from jsynth.privacy.mechanism import PrivacyError, PrivateFamily
from jsynth.privacy.poisson import PoissonBatches


class PrivacyBudgetError(UserError, ValueError):
    """Training would spend more epsilon than ``dp_epsilon``; the message says how much and how to allow it."""


def default_delta(n: int) -> float:
    """min(1e-5, 1/(10 n)): well below 1/n, the level at which releasing one record is (0, delta)-DP."""
    return min(1e-5, 1.0 / (10 * n))


def sampling_rate(config, n: int) -> float:
    return config.batch_size / n


def resolve_dp(config, n: int):
    """``config`` with concrete ``dp_delta`` and ``dp_noise_multiplier``; refuses a plan over budget.

    Raises:
      PrivacyError: the batch size is not below the data's size (no subsampling).
      PrivacyBudgetError: ``steps`` steps would spend more than ``dp_epsilon``.
    """
    if not dp_enabled(config):
        return config
    if not config.batch_size < n:
        raise PrivacyError(f"DP training samples each example with probability batch_size / n; batch_size "
                           f"{config.batch_size} must be below the {n} examples (e.g. --batch-size {max(1, n // 100)})")
    delta = config.dp_delta if config.dp_delta is not None else default_delta(n)
    q = sampling_rate(config, n)
    sigma = config.dp_noise_multiplier
    if sigma is None:
        sigma = accounting.calibrate_noise(q, config.steps, config.dp_epsilon, delta)
    config = dataclasses.replace(config, dp_delta=delta, dp_noise_multiplier=sigma)
    if config.dp_epsilon is not None:
        spend = accounting.epsilon(q, sigma, config.steps, delta)
        if spend > config.dp_epsilon * (1 + 1e-9):
            within = _steps_within(q, sigma, delta, config.dp_epsilon, config.steps)
            raise PrivacyBudgetError(
                f"training to step {config.steps} with noise multiplier {sigma:.6g} (sampling rate {q:.4g}) spends "
                f"epsilon {spend:.4f} at delta {delta:g}, over the budget dp_epsilon={config.dp_epsilon:g}: nothing was "
                f"changed. Train at most {within} steps within the budget, or, to spend epsilon {math.ceil(spend * 100) / 100:g}, "
                f"add --set dp_epsilon={math.ceil(spend * 100) / 100:g} --allow-change dp_epsilon")
    return config


def _steps_within(q: float, sigma: float, delta: float, budget: float, beyond: int) -> int:
    """The most steps whose epsilon stays within ``budget`` (bisection below ``beyond``)."""
    low, high = 0, beyond
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if accounting.epsilon(q, sigma, mid, delta) <= budget else (low, mid)
    return low


# Examples vmapped at once: 8 ran a conditional MLP VAE's DP step in 1.25 s against 2.0 s for all
# 320 rows at once (width 128, 2-core CPU; the per-example gradients of all rows do not fit cache).
MICROBATCH_SIZE = 8


def private_family(family, config, n: int, microbatch_size: int | None = MICROBATCH_SIZE):
    """``family`` wrapped for DP-SGD when the (resolved) config asks for DP; else ``family``."""
    if not dp_enabled(config):
        return family
    return PrivateFamily(family, config.dp_clip_norm, config.dp_noise_multiplier, config.batch_size,
                         microbatch_size=microbatch_size)


def poisson_batches(config, images, labels, devices: int, process_index: int = 0, process_count: int = 1):
    """The run's Poisson batches under DP (``jsynth.privacy.poisson``), None without DP."""
    if not dp_enabled(config):
        return None
    return PoissonBatches(images, labels, sampling_rate(config, len(images)), config.seed, math.lcm(devices, MICROBATCH_SIZE),
                          process_index, process_count)


def dp_record(config, n: int, steps: int) -> dict:
    """``{"dp": {...}}`` for ``steps`` steps taken (checkpoint metadata, manifests, eval JSON); {} without DP."""
    if not dp_enabled(config):
        return {}
    q = sampling_rate(config, n)
    return {"dp": {"epsilon": accounting.epsilon(q, config.dp_noise_multiplier, int(steps), config.dp_delta),
                   "delta": config.dp_delta, "noise_multiplier": config.dp_noise_multiplier,
                   "sampling_rate": q, "steps": int(steps), "clip_norm": config.dp_clip_norm,
                   "accountant": accounting.ACCOUNTANT, "epsilon_budget": config.dp_epsilon}}


def epsilon_metric(config, n: int, steps: int) -> dict:
    """``{"epsilon": spent}`` for metrics.jsonl; {} without DP."""
    record = dp_record(config, n, steps)
    return {"epsilon": record["dp"]["epsilon"]} if record else {}
