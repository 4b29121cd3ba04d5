"""Known-answer tests of the metric maths in jsynth.evaluate.

Each test compares against a closed form, a brute-force reference written out here in plain numpy,
or a property that a broken metric would violate. Sizes are small enough for 2 CPU cores.
"""
import jax
import numpy as np
import pytest
import scipy.linalg

from jsynth.evaluate import (
    ball_counts,
    dcr_share,
    density_coverage,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_infinity,
    k_nearest,
    kth_neighbour_distances,
    membership_inference_auc,
    nearest_distances,
    nndr,
    prdc,
    precision_recall,
)
from jsynth.evaluate import chunks, neighbours
from jsynth.evaluate.privacy import membership_auc_from_distances


def dense_distances(a, b):
    """Full float64 distance matrix: the brute-force reference (small inputs only)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def reference_prdc(real, fake, k):
    """The prdc package's compute_prdc, written out with dense matrices.

    As there, radii are the (k+1)-th smallest distance of each row to its own set with the row
    itself at distance 0 (sklearn's pairwise_distances zeroes the diagonal), and balls are strict.
    """
    def radii(x):
        d = dense_distances(x, x)
        np.fill_diagonal(d, 0.0)
        return np.sort(d, axis=1)[:, k]

    real_r, fake_r = radii(real), radii(fake)
    d = dense_distances(real, fake)  # (N, M)
    fake_in_real = d < real_r[:, None]
    return {
        "precision": fake_in_real.any(axis=0).mean(),
        "recall": (d < fake_r[None, :]).any(axis=1).mean(),
        "density": fake_in_real.sum(axis=0).mean() / k,
        "coverage": (d.min(axis=1) < real_r).mean(),
    }


def diagonal_gaussian_features(rng, mean, std, n):
    """n rows whose sample mean is exactly `mean` and sample covariance exactly diag(std^2).

    Columns of an orthonormal basis orthogonal to the ones vector are centred and uncorrelated.
    """
    d = mean.shape[0]
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, d))]))
    return mean + q[:, 1:] * std * np.sqrt(n - 1)


# ----------------------------------------------------------------------------- Frechet distance


def test_frechet_analytic_shift_equals_squared_norm():
    mu = np.arange(1.0, 9.0) / 4.0
    fd = frechet_distance(mu, np.eye(8), np.zeros(8), np.eye(8))
    assert fd == pytest.approx(mu @ mu, abs=1e-10)


def test_frechet_from_samples_of_shifted_gaussians():
    rng = np.random.default_rng(0)
    d, n = 8, 20_000
    mu = np.full(d, 0.5)  # ||mu||^2 = 2
    a = rng.normal(size=(n, d)) + mu
    b = rng.normal(size=(n, d))
    # Sampling error: the cross term 2 mu.(noise of the mean difference) has std
    # 2 ||mu|| sqrt(2 / n) ~ 0.028; the upward bias is 2d/n (means) + ~d(d+1)/(2n) (covariances)
    # ~ 0.003. 0.1 is > 3 standard deviations plus the bias.
    assert frechet_distance_from_features(a, b) == pytest.approx(mu @ mu, abs=0.1)


def test_frechet_of_a_set_with_itself_is_zero_and_distance_is_symmetric():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16)) + 3.0
    b = rng.normal(size=(400, 16)) * 2.0
    assert abs(frechet_distance_from_features(a, a)) <= 1e-6
    ab, ba = frechet_distance_from_features(a, b), frechet_distance_from_features(b, a)
    assert ab > 1.0
    assert ab == pytest.approx(ba, rel=1e-10)


def test_frechet_from_features_equals_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(2)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    var1, var2 = rng.uniform(0.1, 3.0, size=d), rng.uniform(0.1, 3.0, size=d)
    a = diagonal_gaussian_features(rng, mu1, np.sqrt(var1), 300)
    b = diagonal_gaussian_features(rng, mu2, np.sqrt(var2), 200)
    closed_form = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2.0 * np.sqrt(var1 * var2))
    assert frechet_distance_from_features(a, b) == pytest.approx(closed_form, rel=1e-9)


def test_frechet_agrees_with_sqrtm_on_well_conditioned_covariances():
    rng = np.random.default_rng(3)
    m1, m2 = rng.normal(size=(2, 10, 10))
    s1, s2 = m1 @ m1.T + np.eye(10), m2 @ m2.T + np.eye(10)
    mu1, mu2 = rng.normal(size=(2, 10))
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                - 2.0 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_frechet_handles_rank_deficient_covariances():
    # 20 samples in 64 dimensions: both covariances are singular, the result must stay real and
    # near 0. Not within 1e-6 absolute: each of the 45 null directions adds sqrt(round-off) ~
    # sqrt(1e-16 * ||S||^2) ~ 1e-7 to tr sqrt(.), so the bound is relative to tr(S) ~ 64.
    rng = np.random.default_rng(4)
    a = rng.normal(size=(20, 64))
    fd = frechet_distance_from_features(a, a)
    assert np.isfinite(fd) and abs(fd) <= 1e-7 * np.trace(np.cov(a, rowvar=False))


def test_feature_statistics_match_numpy_and_do_not_depend_on_chunk_size():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 5)) * [1.0, 2.0, 3.0, 4.0, 5.0] + 1e4  # far from 0: cancellation test
    mu, sigma = feature_statistics(x, chunk_size=37)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-8, atol=1e-8)
    mu_one, sigma_one = feature_statistics(x, chunk_size=4096)
    np.testing.assert_allclose(sigma, sigma_one, rtol=1e-8, atol=1e-8)


def test_frechet_infinity_removes_the_small_sample_bias():
    rng = np.random.default_rng(6)
    d = 32
    real = rng.normal(size=(20_000, d))
    fake = rng.normal(size=(5_000, d))  # same distribution: the true distance is 0
    sizes = np.linspace(500, 5_000, 10).astype(int)
    # FD at N = 500 carries a bias of about d(d+1)/(4N) + d/N ~ 0.6; the extrapolation keeps only
    # the real set's (20k samples) ~ 0.02 and the fit's noise.
    fd_smallest = frechet_distance_from_features(real, fake[:500])
    fd_inf = frechet_distance_infinity(real, fake, sizes=sizes, seed=0)
    assert fd_smallest > 0.3
    assert abs(fd_inf) < fd_smallest / 4
    assert frechet_distance_infinity(real, fake, sizes=sizes, seed=0) == fd_inf  # seeded


# ----------------------------------------------------------------------------- neighbours


def test_k_nearest_equals_brute_force():
    rng = np.random.default_rng(7)
    q, r = rng.normal(size=(203, 12)), rng.normal(size=(157, 12)) + 5.0
    d, i = k_nearest(q, r, 4, chunk_size=64)  # 4 query chunks, 3 reference blocks, both padded
    dense = dense_distances(q, r)
    expected_i = np.argsort(dense, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(i, expected_i)
    np.testing.assert_allclose(d, np.take_along_axis(dense, expected_i, axis=1), rtol=1e-5)
    d1, i1 = nearest_distances(q, r, chunk_size=64)
    np.testing.assert_array_equal(i1, dense.argmin(axis=1))
    np.testing.assert_allclose(d1, dense.min(axis=1), rtol=1e-5)


def test_self_exclusion():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(150, 6))
    d, i = nearest_distances(x, x, chunk_size=64)
    np.testing.assert_array_equal(i, np.arange(150))  # without exclusion every row finds itself
    assert np.all(d < 1e-2)  # float32 expansion error on ||x||^2 ~ 6
    dense = dense_distances(x, x)
    np.fill_diagonal(dense, np.inf)
    d, i = nearest_distances(x, x, exclude_self=True, chunk_size=64)
    np.testing.assert_array_equal(i, dense.argmin(axis=1))
    np.testing.assert_allclose(d, dense.min(axis=1), rtol=1e-5)
    radii = kth_neighbour_distances(x, 3, chunk_size=64)
    np.testing.assert_allclose(radii, np.sort(dense, axis=1)[:, 2], rtol=1e-5)


def test_self_exclusion_keeps_duplicate_rows_as_neighbours():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    d, i = nearest_distances(x, x, exclude_self=True)
    np.testing.assert_array_equal(i, [1, 0, 0])
    np.testing.assert_allclose(d, [0.0, 0.0, 5.0], atol=1e-6)


def test_ball_counts_equal_brute_force():
    rng = np.random.default_rng(9)
    q, c = rng.normal(size=(130, 5)), rng.normal(size=(90, 5))
    radii = rng.uniform(0.5, 2.5, size=90)
    expected = (dense_distances(q, c) < radii[None, :]).sum(axis=1)
    np.testing.assert_array_equal(ball_counts(q, c, radii, chunk_size=32), expected)
    # Strict containment, as in prdc: on a grid (exact float32 distances) a point on the sphere is out.
    grid = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    np.testing.assert_array_equal(ball_counts(grid, grid, [0.0, 5.0, 5.0]), [0, 1, 1])


def test_neighbour_kernel_compiles_once_across_chunks():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(300, 4))
    k_nearest(x, x, 2, chunk_size=64)  # warm up this (shape, k)
    before = neighbours._k_nearest_chunk._cache_size()
    k_nearest(x[::-1], x, 2, chunk_size=64)  # 5 chunks, the last padded
    assert neighbours._k_nearest_chunk._cache_size() == before


def test_map_chunks_pads_to_one_shape_and_trims():
    x = np.arange(23 * 3, dtype=np.float32).reshape(23, 3)
    seen = []

    def fn(chunk, start):
        seen.append((chunk.shape, start))
        return {"sum": chunk.sum(axis=1), "pair": (chunk[:, :1] * 2.0, np.full(len(chunk), start))}

    out = chunks.map_chunks(fn, x, 8)  # 3 chunks, the last one 7 rows short
    assert seen == [((8, 3), 0), ((8, 3), 8), ((8, 3), 16)]
    np.testing.assert_array_equal(out["sum"], x.sum(axis=1))
    np.testing.assert_array_equal(out["pair"][0], x[:, :1] * 2.0)
    np.testing.assert_array_equal(out["pair"][1], np.repeat([0, 8, 16], 8)[:23])
    np.testing.assert_array_equal(chunks.map_chunks(lambda c, _: c, x, 64), x)  # one padded chunk
    with pytest.raises(ValueError):
        chunks.map_chunks(lambda c, _: c, x[:0], 8)


def test_kernels_run_with_eight_devices_present():
    assert jax.device_count() == 8  # conftest: the metrics must not trip over a multi-device host
    x = np.random.default_rng(11).normal(size=(40, 3))
    assert kth_neighbour_distances(x, 1).shape == (40,)


# ----------------------------------------------------------------------------- PRDC


@pytest.fixture(scope="module")
def gaussians():
    # d = 64, 2000 each, in place of the prdc README's d = 1000, 10k each (too slow for CI on 2
    # cores): big enough that density/coverage sit near their limits (1 and 1 - 2^-5).
    rng = np.random.default_rng(12)
    return rng.normal(size=(2000, 64)).astype(np.float32), rng.normal(size=(2000, 64)).astype(np.float32)


@pytest.mark.slow
def test_prdc_equals_dense_reference_exactly(gaussians):
    real, fake = gaussians[0], gaussians[1][:1500]  # N != M, so a swapped axis cannot pass
    expected = reference_prdc(real, fake, k=5)
    got = prdc(real, fake, k=5)
    # Counts agree exactly: every ratio below is (integer count) / (fixed denominator).
    for name in ("precision", "recall", "density", "coverage"):
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name
    pr = precision_recall(real, fake, k=3)
    expected3 = reference_prdc(real, fake, k=3)
    assert pr == pytest.approx({"precision": expected3["precision"], "recall": expected3["recall"]}, abs=1e-12)
    assert density_coverage(real, fake, k=5) == pytest.approx(
        {"density": expected["density"], "coverage": expected["coverage"]}, abs=1e-12)


def test_prdc_on_identical_distributions(gaussians):
    real, fake = gaussians
    got = prdc(real, fake, k=5)
    assert 0.8 < got["density"] < 1.2
    assert got["coverage"] > 0.9
    assert 0.2 < got["precision"] < 1.0 and 0.2 < got["recall"] < 1.0


def test_prdc_of_a_shifted_fake_set_collapses(gaussians):
    real, fake = gaussians
    # 3 sigma in every coordinate = a shift of norm 24, against k-NN radii of ~9.
    got = prdc(real, fake[:500] + 3.0, k=5)
    assert got["precision"] < 0.02 and got["density"] < 0.02 and got["coverage"] < 0.02


def test_prdc_does_not_depend_on_chunk_size(gaussians):
    real, fake = gaussians[0][:700], gaussians[1][:600]
    assert prdc(real, fake, k=5, chunk_size=128) == prdc(real, fake, k=5, chunk_size=4096)


# ----------------------------------------------------------------------------- AUC and privacy


def test_membership_auc_is_the_pairwise_share_with_ties_counted_half():
    rng = np.random.default_rng(13)
    members = rng.integers(0, 8, size=150).astype(float)  # many ties
    nonmembers = rng.integers(2, 10, size=250).astype(float)
    # The attack calls a record a member when it is closer to the synthetic data.
    closer = (members[:, None] < nonmembers[None, :]).sum() + 0.5 * (members[:, None] == nonmembers[None, :]).sum()
    expected = closer / (members.size * nonmembers.size)
    auc = membership_auc_from_distances(members, nonmembers)
    assert type(auc) is float and auc == pytest.approx(expected, abs=1e-12)
    assert 0.6 < auc < 0.9  # the members are nearer on average, but far from separable
    assert membership_auc_from_distances([0.0, 0.1], [0.5, 0.9, 2.0]) == 1.0
    assert membership_auc_from_distances([0.5, 0.9, 2.0], [0.0, 0.1]) == 0.0
    assert membership_auc_from_distances([1.0, 1.0], [1.0]) == 0.5
    with pytest.raises(ValueError, match="members and non-members"):
        membership_auc_from_distances([0.1, 0.2], [])
    with pytest.raises(ValueError, match="finite"):
        membership_auc_from_distances([0.1, np.nan], [0.3])


@pytest.fixture(scope="module")
def privacy_sets():
    rng = np.random.default_rng(14)
    d = 16
    train, holdout, fresh = (rng.normal(size=(n, d)) for n in (2000, 2000, 2000))
    # A generator that memorised its training set: every record, shuffled, plus tiny noise.
    copies = train[rng.permutation(2000)] + 1e-3 * rng.normal(size=(2000, d))
    return train, holdout, fresh, copies


def test_dcr_share_flags_copies(privacy_sets):
    train, holdout, fresh, copies = privacy_sets
    honest = dcr_share(train, holdout, fresh)
    leaky = dcr_share(train, holdout, copies)
    # Fresh data is as far from the training set as the holdout: share ~ 5/100 (binomial std
    # ~0.005 plus the threshold's own sampling error).
    assert 0.02 < honest["dcr_share"] < 0.10
    assert leaky["dcr_share"] > 0.95
    assert leaky["dcr_synthetic_median"] < 0.05 < honest["dcr_synthetic_median"]
    assert set(honest) == {"dcr_share", "dcr_synthetic_median", "dcr_holdout_median", "dcr_holdout_p5"}
    assert honest["dcr_holdout_p5"] < honest["dcr_holdout_median"]


def test_membership_inference_auc_flags_copies(privacy_sets):
    train, holdout, fresh, copies = privacy_sets
    # With 2000 + 2000 records the AUC's standard error under no leakage is ~0.009.
    assert membership_inference_auc(train, holdout, fresh) == pytest.approx(0.5, abs=0.04)
    assert membership_inference_auc(train, holdout, copies) > 0.99


def test_nndr_flags_copies_and_matches_brute_force(privacy_sets):
    train, _, fresh, copies = privacy_sets
    assert nndr(train, copies)["nndr_median"] < 0.01
    honest = nndr(train, fresh[:300])
    dense = np.sort(dense_distances(fresh[:300], train), axis=1)
    ratio = dense[:, 0] / dense[:, 1]
    assert honest["nndr_median"] == pytest.approx(np.median(ratio), rel=1e-4)
    assert honest["nndr_share_below_0.5"] == pytest.approx(np.mean(ratio < 0.5), abs=1e-12)
    assert honest["nndr_median"] > 0.5  # in 16 dimensions the two nearest records are alike far
