"""Nominal and exact FLOPs per sample of the benchmark architectures, from their layer shapes.

Conventions of ``docs/architectures.md``: FLOPs = 2 x MACs of Dense / conv layers.
*Nominal* MACs count every tap (a transposed conv: every input pixel times every tap; a conv:
every output pixel times every tap, padding included). *Exact* MACs drop the taps that meet zero
padding or land on cropped output positions: the arithmetic no kernel can avoid. Padding follows
TF/XLA ``SAME`` (what jsynth's flax layers use); PyTorch's symmetric twins do the same count.
"""
from __future__ import annotations

from typing import NamedTuple


class Layer(NamedTuple):
    name: str
    nominal_macs: int
    exact_macs: int


def _same_pad(n_in: int, n_out: int, k: int, s: int) -> int:
    """Low-side padding of a TF ``SAME`` convolution (the extra pixel goes high)."""
    return max((n_out - 1) * s + k - n_in, 0) // 2


def _valid_taps_conv(n_in: int, n_out: int, k: int, s: int, pad_low: int) -> int:
    """Sum over output positions of the taps that read a real (not padding) input pixel."""
    return sum(1 for o in range(n_out) for t in range(k) if 0 <= s * o + t - pad_low < n_in)


def _valid_taps_conv_transpose(n_in: int, n_out: int, k: int, s: int, crop_low: int) -> int:
    """Sum over input positions of the taps that land on a kept (not cropped) output pixel."""
    return sum(1 for i in range(n_in) for t in range(k) if 0 <= s * i + t - crop_low < n_out)


def dense(name: str, n_in: int, n_out: int) -> Layer:
    return Layer(name, n_in * n_out, n_in * n_out)


def conv(name: str, size_in: int, c_in: int, c_out: int, k: int, s: int) -> Layer:
    """A square ``SAME`` convolution."""
    size_out = -(-size_in // s)
    taps = _valid_taps_conv(size_in, size_out, k, s, _same_pad(size_in, size_out, k, s))
    return Layer(name, size_out ** 2 * k * k * c_in * c_out, taps ** 2 * c_in * c_out)


def conv_transpose(name: str, size_in: int, c_in: int, c_out: int, k: int, s: int,
                   padding: str = "SAME") -> Layer:
    """A square transposed convolution, ``SAME`` (output s x input) or ``VALID``."""
    if padding == "VALID":
        size_out, crop_low = (size_in - 1) * s + k, 0
    else:
        size_out = size_in * s
        crop_low = ((size_in - 1) * s + k - size_out) // 2  # of the full (uncropped) output
        # TF/XLA put the extra cropped pixel low for k5 s2 (1 low, 2 high): same count either way.
    taps = _valid_taps_conv_transpose(size_in, size_out, k, s, crop_low)
    return Layer(name, size_in ** 2 * k * k * c_in * c_out, taps ** 2 * c_in * c_out)


def layers(arch: str) -> list[Layer]:
    """The Dense / conv layers of ``arch`` with their MACs per sample."""
    if arch == "dcgan28":
        return [dense("dense", 100, 7 * 7 * 256),
                conv_transpose("convT 256->128 k5 s1", 7, 256, 128, 5, 1),
                conv_transpose("convT 128->64 k5 s2", 7, 128, 64, 5, 2),
                conv_transpose("convT 64->1 k5 s2", 14, 64, 1, 5, 2)]
    if arch == "dcgan64":
        return [conv_transpose("convT 100->512 k4 s1 valid", 1, 100, 512, 4, 1, "VALID"),
                conv_transpose("convT 512->256 k4 s2", 4, 512, 256, 4, 2),
                conv_transpose("convT 256->128 k4 s2", 8, 256, 128, 4, 2),
                conv_transpose("convT 128->64 k4 s2", 16, 128, 64, 4, 2),
                conv_transpose("convT 64->3 k4 s2", 32, 64, 3, 4, 2)]
    if arch == "mlpvae":
        return [dense("dense 20->400", 20, 400), dense("dense 400->784", 400, 784)]
    if arch == "dcgan28-disc":
        return [conv("conv 1->64 k5 s2", 28, 1, 64, 5, 2), conv("conv 64->128 k5 s2", 14, 64, 128, 5, 2),
                dense("dense 6272->1", 7 * 7 * 128, 1)]
    raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")


ARCHS = ("dcgan28", "dcgan64", "mlpvae", "dcgan28-disc")


def flops_per_sample(arch: str) -> tuple[int, int]:
    """(nominal, exact) forward FLOPs per sample of ``arch``."""
    parts = layers(arch)
    return 2 * sum(l.nominal_macs for l in parts), 2 * sum(l.exact_macs for l in parts)


def train_flops_per_image() -> tuple[int, int]:
    """(nominal, exact) FLOPs per real image of a ``tf``-style dcgan28 training step.

    The usual estimate: backward ~ 2 x forward, so 3 x (G + 2 D) (G once, D on real and fake).
    """
    g, d = flops_per_sample("dcgan28"), flops_per_sample("dcgan28-disc")
    return 3 * (g[0] + 2 * d[0]), 3 * (g[1] + 2 * d[1])
