"""Frozen, validated training configs and named presets.

A ``TrainConfig`` is plain data: it is written to ``WORKDIR/config.json``, compared on resume, and
never enters jitted code (factories in ``jsynth.builders`` read the fields they need). Fields left
``None`` take the model's default when the config is resolved (``resolve``), so the config.json
of a run always holds concrete values.
"""
from __future__ import annotations

import dataclasses
import json

from jsynth.overrides import apply_overrides
from jsynth.errors import UserError
from jsynth.privacy.fields import check_dp_fields

# Model name -> family. The families decide the train step and what a sample is.
MODEL_FAMILIES = {"mlpgan": "gan", "dcgan": "gan", "mlpvae": "vae", "convvae": "vae",
                  "tvae": "tabular_vae", "ctgan": "tabular_gan"}
TABLE_FAMILIES = ("tabular_vae", "tabular_gan")  # trained on tables (csv:/parquet: data), not images
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
LIKELIHOODS = ("bernoulli", "gaussian")
VAE_CONDITIONINGS = ("input", "film")  # label at the decoder's input only, or also FiLM on every hidden layer
COMPUTE_DTYPES = ("float32", "bfloat16")
GAN_LOSSES = ("nonsaturating", "hinge", "wgan-gp")
D_CONDITIONINGS = ("concat", "projection")  # how a conditional discriminator takes the label
DIFFAUGMENTS = ("translation", "cutout", "color")  # DiffAugment's transformations (jsynth.augment)

# Per-model defaults for the None fields: width, latent_dim, learning_rate, b1 (and d_conditioning).
_MODEL_DEFAULTS = {
    "mlpgan": dict(width=128, latent_dim=100, learning_rate=2e-4, b1=0.5, d_conditioning="concat"),
    "dcgan": dict(width=64, latent_dim=100, learning_rate=2e-4, b1=0.5, d_conditioning="projection"),
    "mlpvae": dict(width=400, latent_dim=20, learning_rate=1e-3, b1=0.9),
    "convvae": dict(width=32, latent_dim=20, learning_rate=1e-3, b1=0.9),
    # Xu et al. (2019): TVAE 128-128 with a 128-d latent, Adam 1e-3; CTGAN 256-256, 128-d noise, Adam 2e-4, b1 0.5.
    "tvae": dict(width=128, latent_dim=128, learning_rate=1e-3, b1=0.9),
    "ctgan": dict(width=256, latent_dim=128, learning_rate=2e-4, b1=0.5),
}

# Fields that change nothing a step computes: they may differ between a run and its resumption.
OPERATIONAL_FIELDS = ("steps", "checkpoint_every", "max_to_keep", "log_every", "sample_every",
                      "num_devices", "progress", "fd_every", "tensorboard")
# Fields a resumed run may change when the user says so (``jsynth train --allow-change FIELD``): they
# change what later steps compute, not the state's structure (e.g. a lower learning rate after a
# divergence). The run is then no longer reproduced by one command, so it is never implicit.
CHANGEABLE_ON_RESUME = ("learning_rate", "d_learning_rate", "b1", "b2", "weight_decay", "dropout", "ema_decay", "beta",
                        "dp_epsilon")  # dp_epsilon: the budget only (the noise multiplier stays the run's)


class ConfigError(UserError, ValueError):
    """A config value a user got wrong; the message says which and what is allowed."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: str = "dcgan"
    data: str = "digits"
    conditional: bool = False
    steps: int = 2000
    batch_size: int = 64
    seed: int = 0
    # Architecture.
    width: int | None = None         # hidden units (MLPs) or base channels (conv nets)
    latent_dim: int | None = None
    dropout: float = 0.0             # discriminator dropout
    likelihood: str = "bernoulli"    # VAE decoder
    beta: float = 1.0                # VAE: weight of the KL term
    kl_warmup_steps: int = 0         # VAE: the KL weight ramps linearly from 0 to beta over these steps
    free_bits: float = 0.0           # VAE: nats of KL per latent dimension that cost nothing (0: off)
    iwae_samples: int = 1            # VAE: k > 1 trains on the IWAE bound with k samples (1: the ELBO)
    binarize: bool = False           # VAE: train on x ~ Bernoulli(pixel), drawn afresh every step
    vae_conditioning: str | None = None  # VAE: "input", or "film" (label on every decoder layer; None:
                                         # film for conditional VAEs, the measured best, else input)
    res_blocks: int = 0              # convvae: residual blocks at each resolution of encoder and decoder
    image_size: int | None = None    # resize folder: images to this square size
    compute_dtype: str = "float32"   # parameters stay float32
    # Optimisation.
    optimizer: str = "adam"
    learning_rate: float | None = None
    b1: float | None = None
    b2: float = 0.999
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    schedule_steps: int | None = None  # length of the decay; fixed at resolve so runs can be extended
    ema_decay: float = 0.999           # GAN: EMA of the generator weights (what samples come from)
    # GAN recipe (README, "GAN recipes").
    gan_loss: str = "nonsaturating"    # "nonsaturating", "hinge" or "wgan-gp"
    gp_weight: float = 10.0            # wgan-gp: weight of the gradient penalty
    r1_gamma: float = 0.0              # R1 penalty gamma/2 E||grad_x D(x_real)||^2 (0: off)
    r1_every: int = 1                  # lazy R1: applied every k steps, scaled by k
    n_critic: int = 1                  # discriminator updates per generator update
    d_learning_rate: float | None = None  # the discriminator's (None: learning_rate)
    spectral_norm: bool = False        # spectrally normalised discriminator
    d_conditioning: str | None = None  # conditional D: "concat" or "projection" (None: the model's own)
    diffaugment: str = ""              # DiffAugment: comma list of translation,cutout,color ("": off)
    # Tables (tvae, ctgan; README, "Tables").
    target: str | None = None          # the label column: the model is conditional on it
    discrete_columns: str = ""         # comma list of columns to treat as categorical whatever their dtype
    max_modes: int = 10                # most modes of each continuous column's Gaussian mixture
    pac: int = 10                      # ctgan: rows the critic judges together (PacGAN); divides batch_size
    critic_dropout: float = 0.5        # ctgan: dropout after each critic layer
    # Differential privacy (README, "Differential privacy"): on when dp_epsilon or dp_noise_multiplier is set.
    dp_epsilon: float | None = None    # the budget: the noise is calibrated so that `steps` steps spend it
    dp_delta: float | None = None      # None: min(1e-5, 1/(10 n)), fixed when the run starts
    dp_clip_norm: float = 1.0          # per-example gradient L2 bound
    dp_noise_multiplier: float | None = None  # noise std / dp_clip_norm (None: calibrated to dp_epsilon)
    # Operation.
    checkpoint_every: int = 500
    max_to_keep: int = 3
    log_every: int = 50
    sample_every: int = 500
    num_devices: int | None = None   # None: every device
    progress: bool = True
    fd_every: int = 0                # FD every N steps, logged as "fd"; best kept in WORKDIR/best/ (0: off)
    tensorboard: bool = True         # also write logged metrics as TensorBoard events (WORKDIR/tensorboard/)

    def __post_init__(self):
        _check(self.model in MODEL_FAMILIES, "model", self.model, f"one of {sorted(MODEL_FAMILIES)}")
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {SCHEDULES}")
        _check(self.likelihood in LIKELIHOODS, "likelihood", self.likelihood, f"one of {LIKELIHOODS}")
        _check(self.compute_dtype in COMPUTE_DTYPES, "compute_dtype", self.compute_dtype,
               f"one of {COMPUTE_DTYPES}")
        for name in ("steps", "batch_size", "checkpoint_every", "max_to_keep", "log_every", "sample_every"):
            _check(getattr(self, name) > 0, name, getattr(self, name), "a positive integer")
        for name in ("width", "latent_dim", "image_size", "num_devices", "schedule_steps"):
            value = getattr(self, name)
            _check(value is None or value > 0, name, value, "a positive integer")
        _check(self.seed >= 0, "seed", self.seed, "a non-negative integer")
        _check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "in [0, 1)")
        _check(0.0 <= self.ema_decay < 1.0, "ema_decay", self.ema_decay, "in [0, 1)")
        _check(self.beta >= 0, "beta", self.beta, "non-negative")
        self._check_vae_fields()
        self._check_gan_fields()
        self._check_table_fields()
        check_dp_fields(self, _check)
        _check(self.learning_rate is None or self.learning_rate > 0, "learning_rate",
               self.learning_rate, "positive")
        _check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "non-negative")
        _check(self.warmup_steps <= self.steps, "warmup_steps", self.warmup_steps,
               f"at most steps={self.steps} (the warm-up would never end)")
        _check(self.b1 is None or 0.0 <= self.b1 < 1.0, "b1", self.b1, "in [0, 1) (Adam's first-moment decay, SGD's momentum)")
        _check(0.0 <= self.b2 < 1.0, "b2", self.b2, "in [0, 1) (Adam's second-moment decay)")
        _check(self.weight_decay >= 0.0, "weight_decay", self.weight_decay, "non-negative")
        _check(self.fd_every >= 0, "fd_every", self.fd_every, "a non-negative integer")

    def _check_vae_fields(self):
        _check(self.kl_warmup_steps >= 0, "kl_warmup_steps", self.kl_warmup_steps, "a non-negative integer")
        _check(self.free_bits >= 0, "free_bits", self.free_bits, "non-negative (nats per latent dimension)")
        _check(self.iwae_samples >= 1, "iwae_samples", self.iwae_samples, "a positive integer (1: the ELBO)")
        _check(self.res_blocks >= 0, "res_blocks", self.res_blocks, "a non-negative integer")
        _check(self.vae_conditioning is None or self.vae_conditioning in VAE_CONDITIONINGS, "vae_conditioning",
               self.vae_conditioning, f"one of {VAE_CONDITIONINGS}")
        _check(self.iwae_samples == 1 or not self.free_bits, "free_bits", self.free_bits,
               f"0 with iwae_samples={self.iwae_samples} (free bits floor the ELBO's analytic KL, "
               "which the IWAE bound does not have)")
        _check(not self.binarize or self.likelihood == "bernoulli", "binarize", self.binarize,
               f"false with likelihood={self.likelihood!r} (binary data need the bernoulli likelihood)")
        _check(self.vae_conditioning != "film" or self.conditional, "vae_conditioning",
               self.vae_conditioning, "'input' for an unconditional model (set conditional=true for 'film')")
        _check(self.res_blocks == 0 or self.model == "convvae", "res_blocks", self.res_blocks,
               f"0 for model={self.model!r} (residual blocks are a convvae option)")
        if self.family != "vae":
            defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
            for name in ("kl_warmup_steps", "free_bits", "iwae_samples", "binarize", "vae_conditioning"):
                _check(getattr(self, name) == defaults[name], name, getattr(self, name),
                       f"{defaults[name]!r} for model={self.model!r} (a VAE option)")

    def _check_gan_fields(self):
        _check(self.gan_loss in GAN_LOSSES, "gan_loss", self.gan_loss, f"one of {GAN_LOSSES}")
        _check(self.gp_weight >= 0, "gp_weight", self.gp_weight, "non-negative")
        _check(self.r1_gamma >= 0, "r1_gamma", self.r1_gamma, "non-negative (0: no R1 penalty)")
        _check(self.r1_every >= 1, "r1_every", self.r1_every, "a positive integer (1: R1 at every step)")
        _check(self.n_critic >= 1, "n_critic", self.n_critic, "a positive integer (1: simultaneous updates)")
        _check(self.d_learning_rate is None or self.d_learning_rate > 0, "d_learning_rate",
               self.d_learning_rate, "positive, or none for learning_rate's value")
        _check(self.d_conditioning is None or self.d_conditioning in D_CONDITIONINGS, "d_conditioning",
               self.d_conditioning, f"one of {D_CONDITIONINGS}")
        names = self.diffaugment_names
        _check(set(names) <= set(DIFFAUGMENTS) and len(set(names)) == len(names), "diffaugment",
               self.diffaugment, f"a comma list of distinct names from {DIFFAUGMENTS}, or '' for none")
        if self.family != "gan":
            defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
            for name in ("gan_loss", "gp_weight", "r1_gamma", "r1_every", "n_critic", "d_learning_rate",
                         "spectral_norm", "d_conditioning", "diffaugment"):
                _check(getattr(self, name) == defaults[name], name, getattr(self, name),
                       f"{defaults[name]!r} for model={self.model!r} (a GAN option)")

    def _check_table_fields(self):
        _check(self.max_modes >= 1, "max_modes", self.max_modes, "a positive integer")
        _check(self.pac >= 1, "pac", self.pac, "a positive integer")
        _check(0.0 <= self.critic_dropout < 1.0, "critic_dropout", self.critic_dropout, "in [0, 1)")
        if self.family not in TABLE_FAMILIES:
            defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
            for name in ("target", "discrete_columns", "max_modes", "pac", "critic_dropout"):
                _check(getattr(self, name) == defaults[name], name, getattr(self, name),
                       f"{defaults[name]!r} for model={self.model!r} (an option of the table models tvae, ctgan)")
        elif self.family != "tabular_gan":
            for name, default in (("pac", 10), ("critic_dropout", 0.5)):
                _check(getattr(self, name) == default, name, getattr(self, name),
                       f"{default!r} for model={self.model!r} (a ctgan option)")

    @property
    def discrete_column_names(self) -> tuple[str, ...]:
        """``discrete_columns`` as names ("a, b" -> ("a", "b"))."""
        return tuple(name.strip() for name in self.discrete_columns.split(",") if name.strip())

    @property
    def diffaugment_names(self) -> tuple[str, ...]:
        """``diffaugment``'s transformations in the order given ("translation, cutout" -> two)."""
        return tuple(name.strip() for name in self.diffaugment.split(",") if name.strip())

    @property
    def family(self) -> str:
        return MODEL_FAMILIES[self.model]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def replace(config: TrainConfig, **changes) -> TrainConfig:
    """``dataclasses.replace`` (validated again by ``__post_init__``)."""
    return dataclasses.replace(config, **changes)


def _check(ok: bool, name: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"config field {name}={value!r} is invalid: expected {allowed}")


def resolve(config: TrainConfig) -> TrainConfig:
    """Fills the None fields with the model's defaults (so config.json is fully concrete)."""
    defaults = dict(_MODEL_DEFAULTS[config.model], schedule_steps=config.steps)
    if config.family == "vae":
        # FiLM: label agreement 0.964 vs 0.940 and FD 25.2 vs 32.7 for the conditional MLP VAE at a
        # 4-minute budget on MNIST (README, "Image recipes").
        defaults["vae_conditioning"] = "film" if config.conditional else "input"
    if config.family in TABLE_FAMILIES and config.target and not config.conditional:
        config = dataclasses.replace(config, conditional=True)  # a target makes a table model conditional on it
    filled = {k: v for k, v in defaults.items() if getattr(config, k) is None}
    return dataclasses.replace(config, **filled)


def from_json(text: str) -> TrainConfig:
    """The inverse of ``TrainConfig.to_json``; unknown keys are an error (a newer/older jsynth)."""
    values = json.loads(text)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config.json has fields this jsynth does not know: {unknown}")
    # A config.json written before a field existed ran with the behaviour it has now under that value.
    for name, (family, value) in _BEFORE_THE_FIELD.items():
        if MODEL_FAMILIES.get(values.get("model")) == family:
            values.setdefault(name, value)
    return TrainConfig(**values)


# Fields added after runs were written, with the value that reproduces those runs.
_BEFORE_THE_FIELD = {"vae_conditioning": ("vae", "input")}


def differences(saved: TrainConfig, requested: TrainConfig, allowed=()) -> dict[str, tuple]:
    """Fields (other than operational and ``allowed`` ones) whose values differ: {name: (saved, requested)}."""
    unknown = sorted(set(allowed) - set(CHANGEABLE_ON_RESUME))
    if unknown:
        raise ConfigError(f"--allow-change {', '.join(unknown)}: only {', '.join(CHANGEABLE_ON_RESUME)} may "
                          "change when a run resumes (the others change the model or its data)")
    out = {}
    for field in dataclasses.fields(TrainConfig):
        if field.name in OPERATIONAL_FIELDS or field.name in allowed:
            continue
        a, b = getattr(saved, field.name), getattr(requested, field.name)
        if a != b:
            out[field.name] = (a, b)
    return out


def with_overrides(config: TrainConfig, assignments: list[str]) -> TrainConfig:
    """Applies ``KEY=VALUE`` strings (from ``--set``), parsing each value by the field's type."""
    return apply_overrides(config, assignments, error=ConfigError)


# ---- presets: plain functions returning configs -------------------------------------------

def tiny(model: str = "dcgan", **overrides) -> TrainConfig:
    """A seconds-long config for tests: tiny widths, few steps, frequent checkpoints."""
    widths = {"mlpgan": 16, "dcgan": 4, "mlpvae": 16, "convvae": 4, "tvae": 16, "ctgan": 16}
    base = dict(model=model, steps=6, batch_size=16, width=widths[model], latent_dim=8,
                checkpoint_every=3, log_every=2, sample_every=1000, progress=False)
    base.update(overrides)
    return TrainConfig(**base)


def quickstart_gan() -> TrainConfig:
    """Conditional DCGAN on the bundled 8x8 digits: recognisable digits in minutes on 2 cores."""
    return TrainConfig(model="dcgan", data="digits", conditional=True, steps=3000, batch_size=64,
                       width=32, latent_dim=32, learning_rate=5e-4, checkpoint_every=1000,
                       sample_every=1000, log_every=100)


def quickstart_vae() -> TrainConfig:
    """Conditional MLP VAE on the bundled 8x8 digits."""
    return TrainConfig(model="mlpvae", data="digits", conditional=True, steps=3000, batch_size=64,
                       width=256, latent_dim=8, checkpoint_every=1000, sample_every=1000,
                       log_every=100)
