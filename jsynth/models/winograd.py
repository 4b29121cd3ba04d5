"""Transposed convolutions on small feature maps as three matrix products (Winograd minimal filtering).

Why: XLA:CPU runs a convolution through Eigen at about 0.7 of its matrix-product rate and multiplies
every tap on the border padding, while a 7x7 or 8x8 map is mostly border. Winograd's F(m, r)
computes m outputs of an r-tap correlation with m + r - 1 multiplications instead of m * r, and
its transforms are fixed linear maps, so everything is a matrix product:

    V = B_h x B_w       input transform: per axis, (points x tiles, length) @ (length, ...)
    M[p] = V[p] @ U[p]  one (tiles*B, C_in) x (C_in, C_out') product per Winograd point p
    Y = A_h M A_w       output transform: per axis, (outputs, points x tiles) @ (..., ...)

with ``U = G_h kernel G_w``. The zero padding, the tiling and the border crop are folded into the
per-axis matrices, so no padded copy of the input is ever made, and each product runs over the
leading axis of a row-major array (measured in the README's Benchmarks).

A strided transposed convolution is first made a stride-1 one: output phase ``r`` of each axis
reads a window of the (undilated) input; all phases share one window of ``w`` offsets, each
using its own taps (zero elsewhere), so the layer is a stride-1 correlation with ``s*s*C_out``
output channels followed by depth-to-space. ``F(4, 3)`` then serves a k4/k5 stride-2 layer and
``F(4, 5)`` the k5 stride-1 one. Accuracy: float32 results agree with ``lax.conv_transpose`` to
about 1e-5 of the output's scale (points 0, +-1, +-2, +-1/2; tested).
"""
from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2), 3, -3)
TILE = 4  # outputs per tile and axis: F(4, r) is accurate in float32 for r <= 5


@functools.lru_cache(maxsize=None)
def minimal_filter(m: int, r: int):
    """``(AT (m, n), G (n, r), BT (n, n))`` of F(m, r), n = m + r - 1, for correlation:

    ``y[i] = sum_k d[i + k] g[k]`` (i < m) equals ``AT @ ((G @ g) * (BT @ d))`` for d of length n.
    Points: 0, 1, -1, 2, -2, 1/2, -1/2, ... and infinity (Lavin & Gray 2016, Toom-Cook).
    """
    n = m + r - 1
    if n - 1 > len(_POINTS):
        raise ValueError(f"F({m}, {r}) needs {n - 1} points, at most {len(_POINTS)} are defined")
    a = [Fraction(p) for p in _POINTS[:n - 1]]
    f = [np.prod([a[j] - a[l] for l in range(n - 1) if l != j] or [Fraction(1)]) for j in range(n - 1)]
    at = np.zeros((m, n), dtype=object)
    g = np.zeros((n, r), dtype=object)
    for j in range(n - 1):
        at[:, j] = [a[j] ** i for i in range(m)]
        g[j, :] = [a[j] ** k / f[j] for k in range(r)]
    at[:, n - 1] = [Fraction(int(i == m - 1)) for i in range(m)]
    g[n - 1, :] = [Fraction(int(k == r - 1)) for k in range(r)]
    # BT solves sum_j AT[i,j] G[j,k] BT[j,l] = [l == i + k]: a Vandermonde system in the finite
    # points for powers 0..n-2, and the infinity row for the top power n-1.
    vander = np.array([[float(a[j]) ** q for j in range(n - 1)] for q in range(n - 1)])
    c = np.linalg.solve(vander, np.eye(n - 1, n))  # c[j, l] = BT[j, l] / f[j]
    bt = np.zeros((n, n))
    bt[:n - 1] = c * np.array([float(v) for v in f])[:, None]
    bt[n - 1] = np.eye(n)[n - 1] - np.array([float(a[j]) ** (n - 1) for j in range(n - 1)]) @ c
    return at.astype(float), g.astype(float), bt


def _tiling(outputs: int, window: int, tile: int):
    """``(m, F(m, window), a_out (outputs, n, tiles))``: ``outputs`` positions in tiles of m.

    ``a_out[j, :, j // m]`` is the output-transform row that yields position j of its tile.
    """
    m = min(tile, outputs)
    at, g, bt = minimal_filter(m, window)
    a_out = np.zeros((outputs, bt.shape[0], -(-outputs // m)))
    for j in range(outputs):
        a_out[j, :, j // m] = at[j % m]
    return m, (at, g, bt), a_out


def _axis_matrices(length_in: int, length_out: int, kernel: int, stride: int, phases, tile: int):
    """Per-axis pieces of the three products for one axis of a transposed convolution.

    ``phases[r] = (first tap, input offset, number of taps)`` of output phase r (as
    ``jsynth.models.subpixel`` plans them). Returns ``(b_in (n, T, N), g_k (n, s, K),
    a_out (J, n, T))`` with J = ceil(length_out / stride) stacked outputs per phase.
    """
    start = min(d0 for _, d0, _ in phases)
    window = max(d0 + taps for _, d0, taps in phases) - start
    m, (_, g, bt), a_out = _tiling(-(-length_out // stride), window, tile)
    n, tiles = bt.shape[0], a_out.shape[2]
    b_in = np.zeros((n, tiles, length_in))
    for t in range(tiles):
        for a in range(n):
            x = t * m + start + a
            if 0 <= x < length_in:
                b_in[:, t, x] += bt[:, a]
    g_k = np.zeros((n, stride, kernel))
    for r, (t0, d0, taps) in enumerate(phases):
        for e in range(window):
            i = e + start - d0
            if 0 <= i < taps:
                g_k[:, r, t0 + stride * i] += g[:, e]
    return b_in, g_k, a_out


@functools.lru_cache(maxsize=64)
def transform_matrices(h: int, w: int, k_h: int, k_w: int, strides, phases_h, phases_w,
                       out_h: int, out_w: int, tile: int = TILE):
    """Per-axis ``(b_in, g_k, a_out)`` of both axes (``_axis_matrices``), as float32 numpy."""
    s_h, s_w = strides
    return tuple(tuple(m.astype(np.float32) for m in _axis_matrices(*args, tile)) for args in
                 ((h, out_h, k_h, s_h, phases_h), (w, out_w, k_w, s_w, phases_w)))


def _leading_dot(matrix, x, precision, contract: int = 1):
    """``matrix`` (R..., K...) applied to the leading ``contract`` axes (K...) of ``x``.

    Callers transpose first so that the contraction is the major axis of a row-major array:
    otherwise XLA picks a layout with the short contraction innermost (measured 10x slower).
    No reshape of ``x``: merging its batch axis with others would drop its sharding over a
    mesh, and XLA would gather the whole batch on every device.
    """
    m = matrix.ndim - contract
    return jax.lax.dot_general(matrix, x, ((tuple(range(m, matrix.ndim)), tuple(range(contract))), ((), ())),
                               precision=precision)


def _input_transform(x, b_h, b_w, precision):
    """``V[p, q, t, u, b, c] = sum_yz b_h[p, t, y] b_w[q, u, z] x[b, y, z, c]``, one axis at a time.

    Separable: two thin matrix products (points x length), each over the leading axis of a
    row-major array (explicit transposes in between), instead of one dense Kronecker product.
    """
    a = _leading_dot(b_h, x.transpose(1, 2, 0, 3), precision)         # (p, t, W, B, C)
    a = _leading_dot(b_w, a.transpose(2, 0, 1, 3, 4), precision)     # (q, u, p, t, B, C)
    return a.transpose(2, 0, 3, 1, 4, 5)


def _output_transform(m, a_h, a_w, precision):
    """``Y[j, k, b, o] = sum_pqtu a_h[j, p, t] a_w[k, q, u] M[p, q, t, u, b, o]``, one axis at a time."""
    y = _leading_dot(a_h, m.transpose(0, 2, 1, 3, 4, 5), precision, 2)  # (J_h, q, u, B, O)
    y = _leading_dot(a_w, y.transpose(1, 2, 0, 3, 4), precision, 2)     # (J_w, J_h, B, O)
    return y.transpose(1, 0, 2, 3)


def _matrices(x, kernel, strides, phases_h, phases_w, out_h, out_w):
    """The per-axis ``(b, g, a)`` matrices of a transposed convolution, in the compute dtype."""
    _, h, w, _ = x.shape
    k_h, k_w = kernel.shape[:2]
    return ([jnp.asarray(m, jnp.result_type(x, kernel)) for m in axis]
            for axis in transform_matrices(h, w, k_h, k_w, tuple(strides), tuple(phases_h), tuple(phases_w),
                                           out_h, out_w))


def transform_kernel(x, kernel, strides, phases_h, phases_w, out_h: int, out_w: int, precision=None):
    """``U = G_h kernel G_w`` of ``conv_transpose`` for inputs shaped like ``x``: (n_h, n_w, C_in, s_h*s_w*C_out).

    Depends on the weights only, so a sampler with fixed weights computes it once (the
    ``transformed`` argument of ``conv_transpose``) instead of once per chunk: on dcgan64's 4x4
    layer it is 36 x 512 x 1024 values, more than a chunk's activations.
    """
    (_, g_h, _), (_, g_w, _) = _matrices(x, kernel, strides, phases_h, phases_w, out_h, out_w)
    u = jnp.einsum("prt,qsu,tuco->pqcrso", g_h, g_w, kernel, precision=precision)
    return u.reshape(*u.shape[:3], -1)  # output channels ordered (phase_h, phase_w, C_out)


def conv_transpose(x, kernel, strides, phases_h, phases_w, out_h: int, out_w: int, precision=None,
                   transformed=None):
    """The transposed convolution whose per-axis output phases are ``phases_h`` / ``phases_w``.

    ``x`` (B, H, W, C_in), ``kernel`` (K_h, K_w, C_in, C_out) -> (B, out_h, out_w, C_out).
    ``transformed``: ``transform_kernel`` of this kernel, when computed ahead; else computed here.
    """
    b = x.shape[0]
    c_out = kernel.shape[3]
    s_h, s_w = strides
    (b_h, _, a_h), (b_w, _, a_w) = _matrices(x, kernel, strides, phases_h, phases_w, out_h, out_w)
    v = _input_transform(x, b_h, b_w, precision)
    u = transform_kernel(x, kernel, strides, phases_h, phases_w, out_h, out_w, precision) if transformed is None else transformed
    # The batch stays a dimension of its own: merged with the tiles, a batch-sharded input (data
    # parallel over a mesh) could not stay sharded, and XLA would gather it across devices.
    m = jnp.einsum("pqtubc,pqco->pqtubo", v, u, precision=precision)
    y = _output_transform(m, a_h, a_w, precision)  # (J_h, J_w, B, s_h * s_w * C_out)
    j_h, j_w = y.shape[:2]
    y = y.reshape(j_h, j_w, b, s_h, s_w, c_out).transpose(2, 0, 3, 1, 4, 5)
    return y.reshape(b, j_h * s_h, j_w * s_w, c_out)[:, :out_h, :out_w]


def _strided_axis_matrices(length_in: int, kernel: int, stride: int, tile: int):
    """Per-axis pieces of a stride-``s`` SAME convolution as a stride-1 one over input phases.

    Output ``j`` reads ``x[s*j + t - low]``; writing ``t - low = s*q + rho`` makes it a stride-1
    correlation over ``q`` of the phase-``rho`` subsampled input (space-to-depth). Returns
    ``(b_in (n, T, s, N), g_k (n, s, K), a_out (J, n, T))``, J = ceil(N / s).
    """
    outputs = -(-length_in // stride)
    low = max((outputs - 1) * stride + kernel - length_in, 0) // 2
    q_min, q_max = (-low) // stride, (kernel - 1 - low) // stride
    m, (_, g, bt), a_out = _tiling(outputs, q_max - q_min + 1, tile)
    n, tiles = bt.shape[0], a_out.shape[2]
    b_in = np.zeros((n, tiles, stride, length_in))
    for t in range(tiles):
        for a in range(n):
            for rho in range(stride):
                x = stride * (t * m + q_min + a) + rho
                if 0 <= x < length_in:
                    b_in[:, t, rho, x] += bt[:, a]
    g_k = np.zeros((n, stride, kernel))
    for t in range(kernel):
        q, rho = divmod(t - low, stride)
        g_k[:, rho, t] += g[:, q - q_min]
    return b_in, g_k, a_out


@functools.lru_cache(maxsize=64)
def strided_transform_matrices(h: int, w: int, k_h: int, k_w: int, strides, tile: int = TILE):
    """Per-axis ``(b_in, g_k, a_out)`` of both axes (``_strided_axis_matrices``), float32 numpy."""
    return tuple(tuple(m.astype(np.float32) for m in _strided_axis_matrices(n, k, s, tile))
                 for n, k, s in ((h, k_h, strides[0]), (w, k_w, strides[1])))


def conv(x, kernel, strides, precision=None):
    """``lax.conv_general_dilated(x, kernel, strides, "SAME")`` (NHWC, HWIO) by Winograd transforms.

    The stride folds into the channels (space-to-depth), so a k5 stride-2 layer is an F(4, 3)
    correlation with ``s*s*C_in`` input channels; its gradients are matrix products, where
    XLA's own input gradient of a strided convolution correlates a zero-dilated array.
    """
    b, h, w, c_in = x.shape
    (b_h, g_h, a_h), (b_w, g_w, a_w) = (
        [jnp.asarray(m, jnp.result_type(x, kernel)) for m in axis]
        for axis in strided_transform_matrices(h, w, *kernel.shape[:2], tuple(strides)))
    n_h, t_h, s_h, _ = b_h.shape
    n_w, t_w, s_w, _ = b_w.shape
    v = _input_transform(x, b_h.reshape(n_h, t_h * s_h, h), b_w.reshape(n_w, t_w * s_w, w), precision)
    v = v.reshape(n_h, n_w, t_h, s_h, t_w, s_w, b, c_in)
    u = jnp.einsum("prt,qsu,tuco->pqrsco", g_h, g_w, kernel, precision=precision)
    m = jnp.einsum("pqtrusbc,pqrsco->pqtubo", v, u, precision=precision)
    return _output_transform(m, a_h, a_w, precision).transpose(2, 0, 1, 3)


def kernel_and_bias(module: "ConvFields", x):
    """``(x, kernel, bias)`` of a flax-Conv-like ``module`` (its fields), promoted to its dtype.

    The parameters flax's ``Conv`` / ``ConvTranspose`` would create (names, shapes,
    initialisers), which is what makes the drop-ins here and in ``subpixel`` interchangeable.
    """
    shape = tuple(module.kernel_size) + (x.shape[-1], module.features)
    kernel = module.param("kernel", module.kernel_init, shape, module.param_dtype)
    bias = module.param("bias", module.bias_init, (module.features,), module.param_dtype) if module.use_bias else None
    return nn.dtypes.promote_dtype(x, kernel, bias, dtype=module.dtype)


class ConvFields(nn.Module):
    """The fields of flax's ``Conv`` / ``ConvTranspose`` that ``kernel_and_bias`` reads, for drop-ins."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Any = nn.linear.default_kernel_init
    bias_init: Any = nn.initializers.zeros_init()


class WinogradConv(ConvFields):
    """A drop-in for ``flax.linen.Conv`` (2-D, SAME padding, no dilation) computed by ``conv``.

    Same fields, the same ``kernel`` and ``bias`` parameters (shapes, initialisers), the same
    function to float tolerance: give it the name the Conv had and checkpoints are
    interchangeable. Worth it on small output maps (the 7x7 layer of ``dcgan28-disc``), where
    its gradients are matrix products instead of XLA's zero-dilated convolutions.
    """

    @nn.compact
    def __call__(self, x):
        x, kernel, bias = kernel_and_bias(self, x)
        y = conv(x, kernel, tuple(self.strides), self.precision)
        return y if bias is None else y + bias
