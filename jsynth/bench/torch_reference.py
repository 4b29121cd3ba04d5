"""PyTorch twins of the benchmark architectures, timed the same way as jsynth's (optional).

Imported lazily: everything here needs ``torch`` (``pip install -e ".[bench]"``), and
``available()`` says whether it is there without importing the rest of jsynth's benchmark code.
The networks follow ``docs/architectures.md`` layer by layer in PyTorch's own
conventions (NCHW, ``padding=2, output_padding=1`` for the k5 stride-2 layers), so they do the
same work as jsynth's; weights are PyTorch's default initialisation and BatchNorm running
statistics are left at (0, 1): timing does not depend on the values.

A *mode* is how a network is run: ``eager`` (``torch.inference_mode``), ``compile``
(``torch.compile``, inductor), ``channels_last`` (NHWC memory format, which oneDNN prefers for
some convolutions), and any of these with ``+bf16`` (``torch.autocast`` to bfloat16 on CPU).
A sampling call draws ``z`` with ``torch.randn`` and returns a numpy array in host memory, so
it is timed end to end exactly like jsynth's chunks.
"""
from __future__ import annotations

import importlib.util
import time
from typing import Callable

SAMPLING_MODES = ("eager", "channels_last", "compile", "eager+bf16", "channels_last+bf16", "compile+bf16")


def available() -> bool:
    """True if PyTorch can be imported."""
    return importlib.util.find_spec("torch") is not None


MISSING = ("PyTorch is not installed, so the PyTorch side of the comparison is skipped; "
           "install it with: pip install -e \".[bench]\"  (CPU wheel torch==2.13.0)")


def _torch():
    import torch
    return torch


def generator(arch: str):
    """The PyTorch twin of ``arch`` (dcgan28, dcgan64 or mlpvae), in eval mode."""
    torch = _torch()
    nn = torch.nn
    if arch == "dcgan28":
        net = nn.Sequential(
            nn.Linear(100, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256), nn.LeakyReLU(0.2),
            nn.Unflatten(1, (256, 7, 7)),
            nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False), nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(64, 1, 5, 2, 2, output_padding=1, bias=False), nn.Tanh())
    elif arch == "dcgan64":
        layers: list = [nn.Unflatten(1, (100, 1, 1)), nn.ConvTranspose2d(100, 512, 4, 1, 0, bias=False),
                        nn.BatchNorm2d(512), nn.ReLU()]
        for c_in in (512, 256, 128):
            layers += [nn.ConvTranspose2d(c_in, c_in // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c_in // 2),
                       nn.ReLU()]
        net = nn.Sequential(*layers, nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False), nn.Tanh())
    elif arch == "mlpvae":
        net = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784), nn.Sigmoid(),
                            nn.Unflatten(1, (1, 28, 28)))
    else:
        raise ValueError(f"no PyTorch twin for {arch!r}; known: dcgan28, dcgan64, mlpvae")
    return net.eval()


def discriminator():
    """``dcgan28-disc``: Conv 64 k5 s2, Conv 128 k5 s2 (LeakyReLU 0.2, Dropout 0.3), Dense 1."""
    nn = _torch().nn
    return nn.Sequential(
        nn.Conv2d(1, 64, 5, 2, 2), nn.LeakyReLU(0.2), nn.Dropout(0.3),
        nn.Conv2d(64, 128, 5, 2, 2), nn.LeakyReLU(0.2), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(7 * 7 * 128, 1))


def _split_mode(mode: str) -> tuple[str, bool]:
    base, _, extra = mode.partition("+")
    if base not in ("eager", "channels_last", "compile") or extra not in ("", "bf16"):
        raise ValueError(f"unknown PyTorch mode {mode!r}; known: {', '.join(SAMPLING_MODES)}")
    return base, extra == "bf16"


def make_sampler(arch: str, batch_size: int, mode: str = "eager", latent_dim: int | None = None
                 ) -> Callable[[], object]:
    """A ``() -> numpy array (B, C, H, W)`` drawing one batch of samples in ``mode``.

    Samples end float32 in host memory, like jsynth's (a bfloat16 autocast output is cast back).
    """
    torch = _torch()
    base, bf16 = _split_mode(mode)
    net = generator(arch)
    latent_dim = latent_dim or (20 if arch == "mlpvae" else 100)
    if base == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    if base == "compile":
        net = torch.compile(net)

    def sample():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = torch.randn(batch_size, latent_dim)
            return net(z).float().numpy()

    return sample


def make_train_step(batch_size: int, mode: str = "eager") -> Callable[[], float]:
    """One ``tf``-style dcgan28 training step (see docs/architectures.md) as ``() -> d_loss``.

    G forward once, D forward on real and fake, BCE-with-logits, Adam(2e-4, 0.5, 0.999) on
    both networks, BatchNorm in training mode, dropout on; real images are a fixed random batch.
    ``mode``: ``eager`` or ``compile`` (both networks under ``torch.compile``; the optimiser
    steps stay eager).
    """
    torch = _torch()
    if mode not in ("eager", "compile"):
        raise ValueError(f"unknown PyTorch training mode {mode!r}; known: eager, compile")
    g, d = generator("dcgan28").train(), discriminator().train()
    if mode == "compile":
        # D's backward graph is walked twice (D loss, then G loss through D(fake)): a compiled
        # backward may then not donate its buffers.
        torch._functorch.config.donated_buffer = False
    g_net, d_net = (torch.compile(g), torch.compile(d)) if mode == "compile" else (g, d)
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    real = torch.rand(batch_size, 1, 28, 28) * 2 - 1
    ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)

    def step():
        z = torch.randn(batch_size, 100)
        fake = g_net(z)
        real_logits = d_net(real)[:, 0]
        fake_logits = d_net(fake)[:, 0]
        d_loss = bce(real_logits, ones) + bce(fake_logits, zeros)
        g_loss = bce(fake_logits, ones)
        g_opt.zero_grad(set_to_none=True)
        d_opt.zero_grad(set_to_none=True)
        d_grads = torch.autograd.grad(d_loss, list(d.parameters()), retain_graph=True)
        g_grads = torch.autograd.grad(g_loss, list(g.parameters()))
        for p, grad in zip(d.parameters(), d_grads):
            p.grad = grad
        for p, grad in zip(g.parameters(), g_grads):
            p.grad = grad
        d_opt.step()
        g_opt.step()
        return d_loss.detach()

    return lambda: float(step())


def matmul_peak_gflops(dtype: str = "float32", n: int = 2048, reps: int = 5) -> float:
    """PyTorch's own matmul throughput (GFLOP/s, best of ``reps``), for reference beside jsynth's."""
    torch = _torch()
    a = torch.randn(n, n, dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    best = float("inf")
    for _ in range(reps + 1):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9
