"""jsynth's models and train step inside your own JAX training loop.

    python examples/custom_loop.py

A class-conditional MLP VAE on the bundled digits, driven by hand: you own the loop, the data and
the logging; jsynth provides the module, the pure jitted step and the sampler.
"""
import jsynth  # noqa: F401  (before jax: one XLA host device per CPU core)

import jax
import numpy as np

from jsynth import configs, data, parallel, sampling
from jsynth.builders import build_optimizer, build_vae
from jsynth.decoders import vae_decoder
from jsynth.train.steps import init_vae_state, make_vae_step

digits = data.load("digits")                       # 1,797 images, (8, 8, 1), in [0, 1]
config = configs.resolve(configs.TrainConfig(model="mlpvae", conditional=True, batch_size=64))
vae = build_vae(config, digits.image_shape, num_classes=10)
optimizer = build_optimizer(config)                # Adam, from the config
mesh = parallel.data_mesh()                        # every device; batch sharded, state replicated

state = parallel.replicate(mesh, init_vae_state(vae, optimizer, jax.random.key(0),
                                                image_shape=digits.image_shape, num_classes=10))
train_step = make_vae_step(vae, optimizer, mesh=mesh, num_classes=10)
step_key = jax.random.key(1)
for step in range(500):
    rows = data.batch_indices(step, 64, len(digits), seed=0)   # deterministic per (seed, step)
    batch = {"image": digits.images[rows], "label": digits.labels[rows]}
    state, metrics = train_step(state, parallel.shard_batch(mesh, batch), jax.random.fold_in(step_key, step))
    if step % 100 == 0:
        print(step, {k: round(float(v), 2) for k, v in metrics.items()})

# Ten samples of the digit 3: sample i depends only on (seed, i).
images, labels = sampling.sample(vae_decoder(vae), {"params": state.params}, num=10,
                                 latent_dim=config.latent_dim, num_classes=10, label=3, chunk_size=10)
print("samples", images.shape, "labels", labels, "pixel mean", float(np.mean(images)))
