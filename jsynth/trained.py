"""A trained model loaded back from its workdir: what ``sample`` and ``eval`` start from."""
from __future__ import annotations

import dataclasses
from typing import Callable


from jsynth import parallel, workdir as wd
from jsynth.builders import build_parts
from jsynth.checkpoint import Checkpointer
from jsynth.configs import TrainConfig


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    config: TrainConfig
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


def load_trained(workdir: str, *, mesh=None, use_ema: bool = True) -> TrainedModel:
    """Restores the newest readable checkpoint of a run (EMA generator by default).

    Raises:
      WorkdirError: the workdir holds no run or no checkpoint.
    """
    config = wd.read_config(workdir)
    checkpoints = Checkpointer(wd.checkpoint_dir(workdir), config.max_to_keep)
    if not checkpoints.steps():
        raise wd.WorkdirError(f"{workdir} has no checkpoint yet; train it first (`jsynth train "
                              f"--workdir {workdir} ...`)")
    metadata = None
    for step in reversed(checkpoints.steps()):
        try:
            metadata = checkpoints.restore_metadata(step)
            break
        except Exception:  # a damaged checkpoint: restore_latest below reports it
            continue
    if metadata is None:
        raise wd.WorkdirError(f"no checkpoint in {checkpoints.directory} is readable")
    image_shape, num_classes = tuple(metadata["image_shape"]), int(metadata["num_classes"])
    parts = build_parts(config, image_shape, num_classes)
    target = parallel.replicated_shapes(parts.init, mesh or parallel.data_mesh())
    state, metadata, step = checkpoints.restore_latest(target)
    checkpoints.close()
    variables = (parts.variables(state, use_ema) if config.family == "gan" else parts.variables(state))
    variables = parts.for_sampling(variables)
    return TrainedModel(config, parts.decode, variables, parts.latent_dim, num_classes, image_shape,
                        tuple(metadata.get("class_names", ())), step, metadata.get("data", config.data),
                        parts.device_rows)
