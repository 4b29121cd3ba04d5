"""Validation of the ``dp_*`` config fields (called from ``TrainConfig.__post_init__``).

Kept apart from ``jsynth.privacy.plan`` so that ``jsynth.configs`` imports no accountant or JAX.
"""
from __future__ import annotations

# GAN recipe fields DP training cannot take, with the value it needs: their terms are not sums of
# per-example terms of the real data (or, spectral norm, keep statistics updated from it).
_GAN_RECIPE = {"gan_loss": ("nonsaturating", "hinge"), "r1_gamma": (0.0,), "n_critic": (1,),
               "spectral_norm": (False,), "diffaugment": ("",)}


def dp_enabled(config) -> bool:
    return config.dp_epsilon is not None or config.dp_noise_multiplier is not None


def check_dp_fields(config, check) -> None:
    """``check(ok, name, value, allowed)`` raises the config's error when ``ok`` is false."""
    check(config.dp_epsilon is None or config.dp_epsilon > 0, "dp_epsilon", config.dp_epsilon,
          "positive (the privacy budget), or none")
    check(config.dp_delta is None or 0 < config.dp_delta < 1, "dp_delta", config.dp_delta,
          "in (0, 1), or none for min(1e-5, 1/(10 n))")
    check(config.dp_clip_norm > 0, "dp_clip_norm", config.dp_clip_norm,
          "positive (the per-example gradient norm bound)")
    check(config.dp_noise_multiplier is None or config.dp_noise_multiplier > 0, "dp_noise_multiplier",
          config.dp_noise_multiplier, "positive (noise std / dp_clip_norm), or none to calibrate it to dp_epsilon")
    if not dp_enabled(config):
        check(config.dp_delta is None, "dp_delta", config.dp_delta,
              "none without dp_epsilon or dp_noise_multiplier (set one of them to train with DP)")
        return
    if config.family == "gan":
        for name, allowed in _GAN_RECIPE.items():
            check(getattr(config, name) in allowed, name, getattr(config, name),
                  f"one of {allowed} under differential privacy (dp_epsilon/dp_noise_multiplier set): "
                  "DP-SGD clips per-example gradients of the real term, which this option does not have")
