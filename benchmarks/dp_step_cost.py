"""Seconds per training step, plain vs DP-SGD (jsynth.privacy.PrivateFamily), same family, same process.

Usage: python benchmarks/dp_step_cost.py MODEL WIDTH BATCH [MICROBATCH]; the DP batch is padded to
1.25 x BATCH rows (about what Poisson sampling pads to). Prints compile time and the mean of 5 steps.
"""
import time, sys, numpy as np, jax, jax.numpy as jnp
from jsynth import configs, parallel
from jsynth.builders import build_family
from jsynth.privacy.mechanism import PrivateFamily
from jsynth.train.steps import make_step
model, width, B = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mb = int(sys.argv[4]) if len(sys.argv) > 4 else None
c = configs.resolve(configs.TrainConfig(model=model, conditional=True, width=width, batch_size=B))
mesh = parallel.data_mesh()
fam = build_family(c, (28, 28, 1), 10)
M = int(B * 1.25) // mesh.devices.size * mesh.devices.size
for name, f in (("plain", fam), ("dp", PrivateFamily(fam, 1.0, 1.0, B, microbatch_size=mb))):
    step = make_step(f, mesh)
    state = jax.jit(f.init, out_shardings=parallel.replicated(mesh))(jax.random.key(0))
    rows = B if name == "plain" else M
    rng = np.random.default_rng(0)
    batch = {"image": rng.random((rows, 28, 28, 1), np.float32) * (2 if fam.data_range == "tanh" else 1) - (1 if fam.data_range == "tanh" else 0),
             "label": rng.integers(0, 10, rows).astype(np.int32)}
    if name == "dp": batch["mask"] = (np.arange(rows) < B).astype(np.float32)
    b = parallel.shard_batch(mesh, batch)
    t = time.perf_counter(); state, m = step(state, b, jax.random.key(1)); jax.block_until_ready(m); tc = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(5): state, m = step(state, b, jax.random.key(i)); 
    jax.block_until_ready(m)
    print(model, width, B, name, "devices", mesh.devices.size, f"compile {tc:.1f}s step {(time.perf_counter()-t)/5:.3f}s", flush=True)
