"""FD during training: measure the current generator on a schedule and keep the best checkpoint.

``FDTracker.for_run`` sets up what ``jsynth.train.loop`` needs when ``fd_every > 0``: the same real
splits and feature network as ``jsynth eval`` (so the logged number is the evaluation's ``fd`` at
the same sample count and seed), the reference statistics computed once, and a second
``Checkpointer`` in WORKDIR/best/ that keeps (max_to_keep=1) the state with the lowest FD so far,
its FD in the checkpoint metadata. A resumed run reads that FD back, so "best" survives restarts.

Measuring FD does not touch the training state or any random key of training: a run with
``fd_every`` reaches bitwise the same parameters as one without.
"""
from __future__ import annotations

import math
import os

import jax

from jsynth import sampling
from jsynth.checkpoint import Checkpointer
from jsynth.errors import InputError
from jsynth.evaluate import feature_net as fnet
from jsynth.evaluate import splits as jsplits
from jsynth.evaluate.frechet import feature_statistics, frechet_distance

DEFAULT_NUM = 10_000  # the same as `jsynth eval`'s default, so the numbers compare
SAMPLE_CHUNK = 256


class FDTracker:
    """Computes FD of a generator's samples against the held-out reference; tracks the best.

    Args:
      net: the feature network.
      reference: (mu, sigma) of the reference features.
      sample_fn: variables -> (N, H, W, C) images in [0, 1].
      best_dir: where the best checkpoint goes (None: not kept).
    """

    def __init__(self, net: fnet.FeatureNet, reference, sample_fn, best_dir: str | None = None):
        self.net, self.reference, self.sample_fn = net, reference, sample_fn
        self.best_fd, self.best_step = math.inf, None
        self.checkpoints = Checkpointer(best_dir, max_to_keep=1) if best_dir else None
        if self.checkpoints is not None and self.checkpoints.latest_step() is not None:
            step = self.checkpoints.latest_step()
            self.best_fd, self.best_step = float(self.checkpoints.restore_metadata(step)["fd"]), step

    @classmethod
    def for_run(cls, setup, workdir: str, *, num: int | None = None, seed: int = 0,
                progress: bool = True) -> "FDTracker":
        """The tracker of a training run.

        Args:
          setup: the loop's RunSetup (config, dataset, family, num_classes, mesh).
          workdir: the run's directory; the best checkpoint goes to WORKDIR/best/.
          num: samples per measurement (default DEFAULT_NUM: 10,000, like ``jsynth eval``).
          seed: sampling seed (the same samples every time: only the generator changes).
        """
        if jax.process_count() > 1:
            raise InputError("fd_every needs a single-process run (the feature network runs on this "
                             "process's devices); evaluate checkpoints with `jsynth eval` instead")
        config, family = setup.config, setup.family
        num = num or DEFAULT_NUM
        real = jsplits.real_splits(config.data, image_size=config.image_size, seed=seed)
        net = fnet.load_or_train(real.train, real.heldout, seed=seed, progress=progress)
        reference = feature_statistics(net.features(real.heldout.images))
        chunk = SAMPLE_CHUNK * setup.mesh.devices.size  # divides over the mesh

        def sample_fn(variables):
            images, _ = sampling.sample(family.decode, variables, num=num, latent_dim=family.latent_dim,
                                        seed=seed, chunk_size=chunk, num_classes=setup.num_classes,
                                        mesh=setup.mesh)
            return images

        return cls(net, reference, lambda state: sample_fn(family.sample_variables(state)),
                   os.path.join(os.path.abspath(workdir), "best"))

    def measure(self, state) -> float:
        """FD of the samples of ``state``'s generator (EMA weights for GANs)."""
        features = self.net.features(self.sample_fn(state))
        return frechet_distance(*self.reference, *feature_statistics(features))

    def update(self, step: int, state, metadata: dict) -> float:
        """Measures FD at ``step``; saves ``state`` to best/ when it is the lowest so far.

        Returns:
          The FD.
        """
        fd = self.measure(state)
        if fd < self.best_fd:
            self.best_fd, self.best_step = fd, step
            if self.checkpoints is not None:
                self.checkpoints.save(step, state, dict(metadata, fd=fd))
        return fd

    def close(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.close()
