"""Strided transposed convolutions computed as sub-pixel (phase) convolutions.

A stride-``s`` transposed convolution first inserts ``s - 1`` zeros between input pixels and then
correlates with the kernel, so ``(s*s - 1) / (s*s)`` of its multiplications are by inserted zeros
(75 % at stride 2) unless the backend skips them. Output pixel ``o = s*m + r`` only ever meets
the kernel taps ``t = (pad - r) mod s, +s, +2s, ...``, each with input pixel ``m + (r + t - pad)/s``.
So each of the ``s*s`` output *phases* ``(r_y, r_x)`` is an ordinary stride-1 correlation of the
undilated input with a sub-kernel ``kernel[t_y::s, t_x::s]``; the phases are then interleaved
(depth-to-space). That is the same function, with the same kernel array, at ``1/(s*s)`` of the
dilated form's arithmetic: exactly the nominal transposed-conv MACs of docs/architectures.md.

Three lowerings compute the phases, chosen per layer by ``choose_lowering`` from measurements on
XLA:CPU (see the README's Benchmarks): ``phase_convs``, one stride-1 convolution per phase with
its sub-kernel (the wide layers); ``col2im``, one matrix product of every input pixel with
every tap followed by a fused shift-and-add per phase (a 1x1 input, or an output of 1-3
channels, where a convolution would waste most of its work); both do the nominal MACs of
docs/architectures.md (taps on the border padding included), never the zeros of dilation.
And ``winograd`` (``jsynth.models.winograd``, 7x7 and 8x8 maps): all phases as one stride-1
correlation by Winograd's minimal filtering, fewer multiplications than even the exact MACs.

``conv_transpose(x, kernel, strides, padding)`` equals ``jax.lax.conv_transpose`` with
NHWC / HWIO layouts and ``transpose_kernel=False`` (what ``flax.linen.ConvTranspose`` calls),
for ``padding`` ``"SAME"``, ``"VALID"`` or explicit pairs.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jsynth.models import winograd

UPSAMPLE_MODES = ("subpixel", "dilated")
TRANSFORMED = "transformed_kernels"  # flax collection: Winograd-transformed kernels, for sampling


def _dilated_padding(k: int, s: int, padding) -> tuple[int, int]:
    """(low, high) padding of the zero-dilated input, as ``jax.lax.conv_transpose`` computes it."""
    if padding == "SAME":
        pad_len = k + s - 2
        low = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
        return low, pad_len - low
    if padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        return k - 1, pad_len - (k - 1)
    low, high = padding
    return int(low), int(high)



def _phases(n: int, k: int, s: int, padding) -> tuple[int, list[tuple[int, int, int]]]:
    """Output length and, per phase r, (first tap t0, input offset d0, number of taps).

    With the dilated input padded by ``low``, output ``o`` reads dilated position ``o + t - low``,
    a real input pixel ``(o + t - low) / s`` when divisible.
    """
    low, high = _dilated_padding(k, s, padding)
    out = (n - 1) * s + 1 + low + high - k + 1
    phases = []
    for r in range(s):
        t0 = (low - r) % s
        taps = len(range(t0, k, s))
        phases.append((t0, (r + t0 - low) // s, taps))
    return out, tuple(phases)


def _shift(x, axis: int, offset: int, length: int):
    """``x[..., offset : offset + length, ...]`` along ``axis``, zero outside the array."""
    n = x.shape[axis]
    low, high = max(0, -offset), max(0, offset + length - n)
    if low or high:
        pads = [(0, 0)] * x.ndim
        pads[axis] = (low, high)
        x = jnp.pad(x, pads)
    start = offset + low
    return jax.lax.slice_in_dim(x, start, start + length, axis=axis)


def _plan(h, w, k_h, k_w, strides, padding):
    """Output size, phases per axis (``_phases``) and phase-plane size of a transposed conv."""
    s_h, s_w = strides
    pad_h, pad_w = (padding, padding) if isinstance(padding, str) else padding
    out_h, phases_h = _phases(h, k_h, s_h, pad_h)
    out_w, phases_w = _phases(w, k_w, s_w, pad_w)
    return out_h, out_w, phases_h, phases_w, -(-out_h // s_h), -(-out_w // s_w)


def _interleave(rows, out_size, strides):
    """Phase planes rows[r_h][r_w] (B, m_h, m_w, C) -> the (B, out_h, out_w, C) output."""
    b, m_h, m_w, c_out = rows[0][0].shape
    (s_h, s_w), (out_h, out_w) = strides, out_size
    y = jnp.stack([jnp.stack(cols, axis=3) for cols in rows], axis=2)
    return y.reshape(b, m_h * s_h, m_w * s_w, c_out)[:, :out_h, :out_w]


def _col2im(x, kernel, strides, padding, precision):
    """Every input pixel times every tap in one matrix product, then each phase sums its taps.

    ``z = x @ kernel`` as (B*H*W, C_in) x (C_in, K*K*C_out), then output phase (r_h, r_w) adds
    the shifted planes ``z[..., t_h, t_w, :]`` of its taps (one fused elementwise pass).
    """
    b, h, w, c_in = x.shape
    k_h, k_w, _, c_out = kernel.shape
    s_h, s_w = strides
    out_h, out_w, phases_h, phases_w, m_h, m_w = _plan(h, w, k_h, k_w, strides, padding)
    z = jnp.dot(x.reshape(b * h * w, c_in), kernel.transpose(2, 0, 1, 3).reshape(c_in, k_h * k_w * c_out),
                precision=precision).reshape(b, h, w, k_h, k_w, c_out)
    rows = []
    for t_h, d_h, n_h in phases_h:
        cols = []
        for t_w, d_w, n_w in phases_w:
            acc = None
            for i in range(n_h):
                for j in range(n_w):
                    tap = z[:, :, :, t_h + s_h * i, t_w + s_w * j]
                    tap = _shift(_shift(tap, 1, d_h + i, m_h), 2, d_w + j, m_w)
                    acc = tap if acc is None else acc + tap
            cols.append(acc)
        rows.append(cols)
    return _interleave(rows, (out_h, out_w), strides)


def _phase_convs(x, kernel, strides, padding, precision):
    """One stride-1 VALID convolution per output phase with its sub-kernel, then interleave."""
    _, h, w, _ = x.shape
    k_h, k_w = kernel.shape[:2]
    s_h, s_w = strides
    out_h, out_w, phases_h, phases_w, m_h, m_w = _plan(h, w, k_h, k_w, strides, padding)
    rows = []
    for t_h, d_h, n_h in phases_h:
        cols = []
        for t_w, d_w, n_w in phases_w:
            xx = _shift(_shift(x, 1, d_h, m_h + n_h - 1), 2, d_w, m_w + n_w - 1)
            cols.append(jax.lax.conv_general_dilated(
                xx, kernel[t_h::s_h, t_w::s_w], (1, 1), "VALID",
                dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision))
        rows.append(cols)
    return _interleave(rows, (out_h, out_w), strides)


def _winograd_plan(x, kernel, strides, padding):
    """``(strides, phases_h, phases_w, out_h, out_w)``: the arguments of the ``winograd`` functions."""
    _, h, w, _ = x.shape
    k_h, k_w = kernel.shape[:2]
    out_h, out_w, phases_h, phases_w, _, _ = _plan(h, w, k_h, k_w, strides, padding)
    return tuple(strides), phases_h, phases_w, out_h, out_w


def _winograd(x, kernel, strides, padding, precision, transformed=None):
    """All phases as one stride-1 correlation computed by Winograd transforms (``winograd``)."""
    return winograd.conv_transpose(x, kernel, *_winograd_plan(x, kernel, strides, padding), precision,
                                   transformed)


def winograd_kernel(x, kernel, strides, padding, precision=None):
    """The transformed kernel the ``winograd`` lowering uses for inputs shaped like ``x``."""
    return winograd.transform_kernel(x, kernel, *_winograd_plan(x, kernel, strides, padding), precision)


LOWERINGS = {"phase_convs": _phase_convs, "col2im": _col2im, "winograd": _winograd}


def choose_lowering(x_shape, kernel_shape, kernel_transformed_ahead: bool = False) -> str:
    """The faster lowering for a layer, as measured on XLA:CPU (README, Benchmarks).

    ``col2im`` when the output has few channels (a thin matrix product beats a convolution whose
    output vector is 1-3 wide) or the kernel covers the input (a 1x1 latent, dcgan64's 4x4 map:
    phase convolutions would pad it into mostly zeros, while every pixel times every tap is one
    large matrix product); ``winograd`` on 7x7 and 8x8 maps (dcgan28's k5 layers, dcgan64's 8x8
    layer), where a convolution multiplies mostly border padding (from 16x16 on, phase
    convolutions are faster), and from 4x4 when the transformed kernel is computed once ahead
    (sampling: dcgan64's 4x4 layer 555 vs 510 samples/s; transformed per call, its 36 x 512 x 1024
    kernel costs more than it saves); ``phase_convs`` otherwise.
    """
    _, h, w, _ = x_shape
    k_h, k_w, _, c_out = kernel_shape
    if c_out < 16:
        return "col2im"
    small_map = h * w <= 64
    if kernel_transformed_ahead and small_map and min(h, w) >= 4 and max(k_h, k_w) <= 5:
        return "winograd"
    if k_h >= h and k_w >= w:
        return "col2im"
    if small_map and min(h, w) >= 7:
        return "winograd"
    return "phase_convs"


def conv_transpose(x, kernel, strides: Sequence[int] = (2, 2), padding: Any = "SAME",
                   precision=None, lowering: str | None = None, transformed=None):
    """``lax.conv_transpose(x, kernel, strides, padding)`` (NHWC, HWIO) by sub-pixel phases.

    Args:
      x: (B, H, W, C_in).
      kernel: (K_h, K_w, C_in, C_out), flax ``ConvTranspose``'s kernel as is.
      strides: (s_h, s_w).
      padding: "SAME", "VALID" or ((low_h, high_h), (low_w, high_w)) of the dilated input.
      lowering: "phase_convs", "col2im" or "winograd" (default: ``choose_lowering``).
      transformed: for the ``winograd`` lowering, ``winograd_kernel`` of this kernel computed
        ahead (sampling with fixed weights); None computes it here.
    Returns:
      (B, H_out, W_out, C_out) in the result dtype of ``x`` and ``kernel``.
    """
    lowering = lowering or choose_lowering(x.shape, kernel.shape)
    if transformed is not None:
        if lowering != "winograd":
            raise ValueError(f"a transformed kernel is for the winograd lowering, not {lowering!r}")
        return _winograd(x, kernel, tuple(strides), padding, precision, transformed)
    return LOWERINGS[lowering](x, kernel, tuple(strides), padding, precision)


class SubPixelConvTranspose(winograd.ConvFields):
    """A drop-in for ``flax.linen.ConvTranspose`` (2-D, no dilation) computed by sub-pixel phases.

    Same fields, the same ``kernel`` (and ``bias``) parameters with the same shapes and
    initialisers, the same function: give it the name the ConvTranspose had and checkpoints
    are interchangeable.

    With ``kernels_ahead=True`` (inference with fixed weights only), a layer lowered by Winograd
    reads its transformed kernel from the ``TRANSFORMED`` collection, or stores it there when that
    collection is mutable (``jsynth.families.with_transformed_kernels``). With the default False
    the layer never reads or writes that collection, so applying a training generator with
    ``mutable=True`` cannot store a transform that would later stand in for (and cut the
    gradient of) its kernel.
    """

    padding: Any = "SAME"
    lowering: str | None = None  # a key of LOWERINGS; None: choose_lowering per layer
    kernels_ahead: bool = False  # use the TRANSFORMED collection (fixed weights only; see above)

    @nn.compact
    def __call__(self, x):
        x, kernel, bias = winograd.kernel_and_bias(self, x)
        strides = tuple(self.strides)
        # Never at init: variables from ``init`` would carry a transform that training makes stale.
        ahead = self.kernels_ahead and not self.is_initializing()
        lowering = self.lowering or choose_lowering(x.shape, kernel.shape, ahead)
        transformed = None
        if lowering == "winograd" and ahead:
            if not (self.has_variable(TRANSFORMED, "kernel") or self.is_mutable_collection(TRANSFORMED)):
                raise ValueError(f"{self.name} was built with kernels_ahead=True but the variables hold no "
                                 f"{TRANSFORMED!r}; prepare them with jsynth.families.with_transformed_kernels")
            transformed = self.variable(TRANSFORMED, "kernel", winograd_kernel, x, kernel, strides,
                                        self.padding, self.precision).value
        y = conv_transpose(x, kernel, strides, self.padding, self.precision, lowering, transformed)
        return y if bias is None else y + bias
