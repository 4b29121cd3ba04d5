"""Transposed convolutions on small feature maps as three matrix products (Winograd minimal filtering).

Why: XLA:CPU runs a convolution through Eigen at about 0.7 of its matrix-product rate and multiplies
every tap on the border padding, while a 7x7 or 4x4 map is mostly border. Winograd's F(m, r)
computes m outputs of an r-tap correlation with m + r - 1 multiplications instead of m * r, and
its transforms are fixed linear maps, so on a small map each of them is one constant matrix:

    V = K_in @ x        (tile positions x tiles, H*W) @ (H*W, B*C_in)   input transform
    M[p] = V[p] @ U[p]  one (tiles*B, C_in) x (C_in, C_out') product per Winograd point p
    Y = K_out @ M       (H_out*W_out, points x tiles) @ (..., B*C_out')  output transform

with ``U = K_kernel @ kernel``. The zero padding, the tiling and the border crop are folded
into ``K_in`` and ``K_out``, so no padded copy of the input is ever made, and each product is
a large matrix product that XLA:CPU runs near its peak (measured in the README's Benchmarks).

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


def _axis_matrices(length_in: int, length_out: int, kernel: int, stride: int, phases, tile: int):
    """Per-axis pieces of the three products for one axis of a transposed convolution.

    ``phases[r] = (first tap, input offset, number of taps)`` of output phase r (as
    ``jsynth.models.subpixel`` plans them). Returns ``(b_in (n, T, N), g_k (n, s, K),
    a_out (J, n, T))`` with J = ceil(length_out / stride) stacked outputs per phase.
    """
    start = min(d0 for _, d0, _ in phases)
    window = max(d0 + taps for _, d0, taps in phases) - start
    outputs = -(-length_out // stride)
    m = min(tile, outputs)
    at, g, bt = minimal_filter(m, window)
    n, tiles = m + window - 1, -(-outputs // m)
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
    a_out = np.zeros((outputs, n, tiles))
    for j in range(outputs):
        a_out[j, :, j // m] = at[j % m]
    return b_in, g_k, a_out


@functools.lru_cache(maxsize=64)
def transform_matrices(h: int, w: int, k_h: int, k_w: int, strides, phases_h, phases_w,
                       out_h: int, out_w: int, tile: int = TILE):
    """``(K_in (P*T, H*W), K_kernel (P*S, k_h*k_w), K_out (J_h*J_w, P*T))`` as float32 numpy.

    P Winograd points (n_h * n_w), T tiles, S = s_h * s_w phases, J stacked outputs per axis.
    """
    s_h, s_w = strides
    bh, gh, ah = _axis_matrices(h, out_h, k_h, s_h, phases_h, tile)
    bw, gw, aw = _axis_matrices(w, out_w, k_w, s_w, phases_w, tile)
    k_in = np.einsum("pty,qux->pqtuyx", bh, bw)
    k_kernel = np.einsum("prt,qsu->pqrstu", gh, gw)
    k_out = np.einsum("jpt,kqu->jkpqtu", ah, aw)
    p, t = bh.shape[0] * bw.shape[0], bh.shape[1] * bw.shape[1]
    return (k_in.reshape(p * t, h * w).astype(np.float32),
            k_kernel.reshape(p * s_h * s_w, k_h * k_w).astype(np.float32),
            k_out.reshape(ah.shape[0] * aw.shape[0], p * t).astype(np.float32))


def conv_transpose(x, kernel, strides, phases_h, phases_w, out_h: int, out_w: int, precision=None):
    """The transposed convolution whose per-axis output phases are ``phases_h`` / ``phases_w``.

    ``x`` (B, H, W, C_in), ``kernel`` (K_h, K_w, C_in, C_out) -> (B, out_h, out_w, C_out).
    """
    b, h, w, c_in = x.shape
    k_h, k_w, _, c_out = kernel.shape
    s_h, s_w = strides
    k_in, k_kernel, k_out = transform_matrices(h, w, k_h, k_w, (s_h, s_w), tuple(phases_h),
                                               tuple(phases_w), out_h, out_w)
    dtype = jnp.result_type(x, kernel)
    j_h, j_w = -(-out_h // s_h), -(-out_w // s_w)
    points = k_kernel.shape[0] // (s_h * s_w)
    tiles = k_in.shape[0] // points
    v = jnp.dot(k_in.astype(dtype), x.transpose(1, 2, 0, 3).reshape(h * w, b * c_in), precision=precision)
    u = jnp.dot(k_kernel.astype(dtype), kernel.reshape(k_h * k_w, c_in * c_out), precision=precision)
    u = u.reshape(points, s_h * s_w, c_in, c_out).transpose(0, 2, 1, 3).reshape(points, c_in, -1)
    # The batch stays a dimension of its own: merged with the tiles, a batch-sharded input (data
    # parallel over a mesh) could not stay sharded, and XLA would gather it across devices.
    m = jnp.einsum("ptbc,pco->ptbo", v.reshape(points, tiles, b, c_in), u, precision=precision)
    y = jnp.dot(k_out.astype(dtype), m.reshape(points * tiles, -1), precision=precision)
    y = y.reshape(j_h, j_w, b, s_h, s_w, c_out).transpose(2, 0, 3, 1, 4, 5)
    return y.reshape(b, j_h * s_h, j_w * s_w, c_out)[:, :out_h, :out_w]
