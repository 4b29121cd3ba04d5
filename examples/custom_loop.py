"""jsynth's models, step, sampler and evaluator inside your own JAX training loop.

    python examples/custom_loop.py

A class-conditional MLP VAE on the bundled digits, driven by hand: you own the loop, the data and
the logging; jsynth provides the module, the pure jitted step, the sampler and the evaluation.
"""
import jax
import numpy as np
import optax

import jsynth

jsynth.configure_cpu()  # before any JAX computation: one host device per core, XLA:CPU flags

real = jsynth.evaluate.real_splits("digits")       # digits: 80% to train on, 20% held out for eval
train = real.train                                 # images (N, 8, 8, 1) in [0, 1], labels 0..9
vae = jsynth.make_mlp_vae(train.image_shape, num_classes=10)
family = jsynth.VAEFamily(vae, optax.adam(1e-3))   # init, update step, sampling variables, decode
mesh = jsynth.data_mesh()                          # every device; batch sharded, state replicated

state = jsynth.replicate(mesh, family.init(jax.random.key(0)))
train_step = jsynth.make_step(family, mesh)        # jitted (state, batch, key) -> (state, metrics)
step_key = jax.random.key(1)
for step in range(1000):
    rows = jsynth.data.batch_indices(step, 64, len(train), seed=0)   # deterministic per (seed, step)
    batch = {"image": train.images[rows], "label": train.labels[rows]}
    state, metrics = train_step(state, jsynth.shard_batch(mesh, batch), jax.random.fold_in(step_key, step))
    if step % 250 == 0:
        print(step, {k: round(float(v), 2) for k, v in metrics.items()})

# Ten samples of the digit 3: sample i depends only on (seed, i).
variables = family.sample_variables(state)
threes, labels = jsynth.sample(family.decode, variables, num=10, label=3, chunk_size=10)
print("samples", threes.shape, "labels", labels, "pixel mean", float(np.mean(threes)))

# 2,000 class-balanced samples, measured against the held-out digits (FD, precision/recall, TSTR, privacy).
images, labels = jsynth.sample(family.decode, variables, num=2000, seed=1)
options = jsynth.evaluate.EvalOptions(augment_fractions=())  # the default adds 1 % / 10 % augmentation
result = jsynth.evaluate.evaluate(images, labels, real, options=options, progress=False)
print({k: round(result[k], 3) for k in ("fd", "precision", "recall", "tstr_accuracy", "trtr_accuracy")})
