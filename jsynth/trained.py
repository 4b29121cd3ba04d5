"""A trained model loaded back from its workdir: what ``sample`` and ``eval`` start from."""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax

from jsynth import parallel, workdir as wd
from jsynth.builders import build_family
from jsynth.checkpoint import Checkpointer
from jsynth.configs import TrainConfig
from jsynth.families import ModelFamily


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    config: TrainConfig
    family: ModelFamily
    decode: Callable          # (variables, z, labels) -> images in [0, 1]
    variables: dict           # EMA generator (GANs, with its transformed kernels) or decoder parameters,
                              # replicated on the mesh
    latent_dim: int
    num_classes: int
    image_shape: tuple
    class_names: tuple
    step: int                 # the checkpoint's step
    data: str
    device_rows: int | None   # rows per device and decode step when sampling
    dp: dict | None = None    # the checkpoint's DP record (jsynth.privacy.plan.dp_record); None: not DP-trained


def load_trained(workdir: str, *, mesh=None, use_ema: bool = True) -> TrainedModel:
    """Restores the sampling weights of the newest readable checkpoint of a run.

    Only what sampling reads is read from disk (``ModelFamily.sampling_shapes``: the EMA
    generator by default, never a discriminator or optimiser state).

    Raises:
      WorkdirError: the workdir holds no run or no checkpoint.
    """
    config = wd.read_config(workdir)
    checkpoints = Checkpointer(wd.checkpoint_dir(workdir), config.max_to_keep)
    if not checkpoints.steps():
        raise wd.WorkdirError(f"{workdir} has no checkpoint yet; train it first (`jsynth train "
                              f"--workdir {workdir} ...`)")
    metadata = checkpoints.latest_metadata()  # a damaged checkpoint: restore_latest below reports it
    if metadata is None:
        raise wd.WorkdirError(f"no checkpoint in {checkpoints.directory} is readable")
    image_shape, num_classes = tuple(metadata["image_shape"]), int(metadata["num_classes"])
    family = build_family(config, image_shape, num_classes)
    replicated = parallel.replicated(mesh or parallel.data_mesh())
    shapes = family.sampling_shapes(use_ema)
    # The state's fields that sampling reads, by name: orbax restores those keys alone.
    wanted = {field.name: jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated),
                                       getattr(shapes, field.name))
              for field in dataclasses.fields(shapes) if getattr(shapes, field.name) is not None}
    restored, metadata, step = checkpoints.restore_latest(wanted, partial=True)
    checkpoints.close()
    state = dataclasses.replace(shapes, **restored)
    decode, variables = family.for_sampling(family.sample_variables(state, use_ema))
    return TrainedModel(config, family, decode, variables, family.latent_dim, num_classes, image_shape,
                        tuple(metadata.get("class_names", ())), step, metadata.get("data", config.data),
                        family.device_rows, metadata.get("dp"))
