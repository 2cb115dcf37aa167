"""PSAlignPool: C++ kernel ('kernel') and pure-TF ('tf') against a numpy loop reference, golden
values, finite-difference gradients, edge cases, determinism and the build error path."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lighthead import ops
from lighthead.compat import tf
from lighthead.ops import _loader, build
from lighthead.ops.reference import (psalign_pool_grad_reference, psalign_pool_reference,
                                     sample_values)

IMPLS = ['kernel', 'tf']
POOLS = ['max', 'avg']


def run_op(impl, features, rois, upstream=None, threads=2, **kwargs):
    """(pooled, d(sum(pooled * upstream))/d features) from a fresh graph and session; upstream
    defaults to ones."""
    with tf.Graph().as_default():
        f = tf.constant(features, tf.float32)
        r = tf.constant(np.asarray(rois, np.float32).reshape(-1, 5))
        pooled = ops.psalign_pool(f, r, impl=impl, **kwargs)
        if upstream is None:
            upstream = np.ones(pooled.shape.as_list(), np.float32)
        fetches = {'pooled': pooled,
                   'grad': tf.gradients(pooled, f, grad_ys=tf.constant(upstream, tf.float32))[0]}
        config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                                inter_op_parallelism_threads=1)
        with tf.Session(config=config) as sess:
            out = sess.run(fetches)
    return out['pooled'], out['grad']


def random_rois(rng, n, batch, height, width, spatial_scale):
    """RoIs in input pixels over a map of height x width at spatial_scale, some partly outside."""
    img_h, img_w = height / spatial_scale, width / spatial_scale
    x1 = rng.uniform(-0.2 * img_w, 0.9 * img_w, n)
    y1 = rng.uniform(-0.2 * img_h, 0.9 * img_h, n)
    x2 = x1 + rng.uniform(0, 0.8 * img_w, n)
    y2 = y1 + rng.uniform(0, 0.8 * img_h, n)
    b = rng.randint(0, batch, n)
    return np.stack([b, x1, y1, x2, y2], axis=1).astype(np.float32)


def reference_pair(features, rois, upstream, dtype=np.float32, **kwargs):
    pooled, argmax = psalign_pool_reference(features, rois, dtype=dtype, **kwargs)
    grad = psalign_pool_grad_reference(features.shape, rois, argmax, upstream, dtype=dtype,
                                       **kwargs)
    return pooled, grad


# ---------------------------------------------------------------- against the numpy reference

@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('pool', POOLS)
@pytest.mark.parametrize('seed,geometry', list(enumerate([
    # (B, H, W, G, K, Sh, Sw, scale)
    (2, 7, 9, 3, 2, 2, 2, 1.0 / 16),
    (3, 5, 11, 2, 3, 1, 3, 1.0 / 8),
    (1, 1, 4, 1, 2, 2, 1, 0.5),
])))
def test_matches_reference(impl, pool, seed, geometry):
    b, h, w, g, k, sh, sw, scale = geometry
    rng = np.random.RandomState(seed)
    features = rng.randn(b, h, w, k * g * g).astype(np.float32)
    rois = random_rois(rng, 12, b, h, w, scale)
    rois[0, 0] = b - 1  # a batch index > 0 for sure
    kw = dict(group_size=g, sample_height=sh, sample_width=sw, spatial_scale=scale, pool=pool)
    upstream = rng.randn(len(rois), g, g, k).astype(np.float32)
    pooled, grad = run_op(impl, features, rois, upstream, **kw)
    ref_pooled, ref_grad = reference_pair(features, rois, upstream, **kw)
    np.testing.assert_allclose(pooled, ref_pooled, rtol=0, atol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ golden values

def ramp(height=4, width=5):
    """F[0, h, w, 0] = 10 h + w: bilinear interpolation of it is exact inside the map."""
    hh, ww = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
    return (10.0 * hh + ww).astype(np.float32)[None, :, :, None]


GOLDEN = [
    # (roi x1, y1, x2, y2), samples (Sh, Sw), pool, expected; group 1, spatial_scale 1.
    # x = 1 + 2*0.5 = 2 is an exact integer: counted once -> 10*1.5 + 2 (the original gives 34).
    ((1, 1, 3, 2), (1, 1), 'max', 17.0),
    # both coordinates integer (1, 1): 11 (the original gives 44).
    ((0, 0, 2, 2), (1, 1), 'max', 11.0),
    # samples at 0.25 / 0.75: max at (0.75, 0.75), mean of 10y + x over the four.
    ((0, 0, 1, 1), (2, 2), 'max', 8.25),
    ((0, 0, 1, 1), (2, 2), 'avg', 5.5),
    # y = -0.5, x = 1: only row 0 contributes, with weight 0.5 (no clamping): 0.5 * 1.
    ((0, -1, 2, 0), (1, 1), 'max', 0.5),
    # y = 3.5 past the last row 3, x = 2.5: 0.5 * (30 + 2.5).
    ((2, 3, 3, 4), (1, 1), 'avg', 16.25),
    # wholly outside: y = 4.5 >= H.
    ((0, 4, 2, 5), (1, 1), 'max', 0.0),
]


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('box,samples,pool,expected', GOLDEN)
def test_golden_ramp(impl, box, samples, pool, expected):
    rois = np.array([[0] + list(box)], np.float32)
    pooled, _ = run_op(impl, ramp(), rois, group_size=1, sample_height=samples[0],
                       sample_width=samples[1], spatial_scale=1.0, pool=pool)
    assert pooled.shape == (1, 1, 1, 1)
    assert pooled[0, 0, 0, 0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize('impl', IMPLS)
def test_golden_ties_and_integer_gradient(impl):
    # Samples at the integer points (1,1), (1,3), (3,1), (3,3) of a constant map: four equal
    # maxima, weight exactly 1 each. The first (1, 1) wins and alone gets the whole gradient.
    features = np.full((1, 5, 5, 1), 2.0, np.float32)
    rois = np.array([[0, 0, 0, 4, 4]], np.float32)
    upstream = np.full((1, 1, 1, 1), 3.0, np.float32)
    pooled, grad = run_op(impl, features, rois, upstream, group_size=1, sample_height=2,
                          sample_width=2, spatial_scale=1.0, pool='max')
    assert pooled[0, 0, 0, 0] == 2.0
    expected = np.zeros_like(features)
    expected[0, 1, 1, 0] = 3.0
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize('impl', IMPLS)
def test_golden_channel_mapping(impl):
    # Channel c holds the constant c; a RoI well inside: output (ph, pw, k) = (k*G + ph)*G + pw.
    g, k = 2, 3
    features = np.broadcast_to(np.arange(k * g * g, dtype=np.float32), (1, 6, 6, k * g * g))
    rois = np.array([[0, 1, 1, 4, 4]], np.float32)
    pooled, _ = run_op(impl, np.ascontiguousarray(features), rois, group_size=g,
                       sample_height=2, sample_width=2, spatial_scale=1.0, pool='avg')
    ph, pw, kk = np.meshgrid(np.arange(g), np.arange(g), np.arange(k), indexing='ij')
    np.testing.assert_allclose(pooled[0], (kk * g + ph) * g + pw, atol=1e-5)


# -------------------------------------------------------------------------------- gradients

def tie_free_case(pool, seed=0):
    """Small features/rois; for max, every winning sample beats the runner-up by > 1e-2, so a
    1e-4 finite-difference step cannot change the winner."""
    kw = dict(group_size=2, sample_height=2, sample_width=2, spatial_scale=0.25, pool=pool)
    rng = np.random.RandomState(seed)
    while True:
        features = rng.randn(2, 4, 5, 8).astype(np.float32)
        rois = random_rois(rng, 4, 2, 4, 5, 0.25)
        values = sample_values(features, rois, 2, 2, 2, 0.25, dtype=np.float64)
        top2 = np.sort(values, axis=3)[:, :, :, -2:]
        if pool == 'avg' or (top2[:, :, :, 1] - top2[:, :, :, 0]).min() > 1e-2:
            return features, rois, kw


@pytest.mark.parametrize('pool', POOLS)
def test_reference_gradient_matches_finite_differences(pool):
    # The op is linear in the features for a fixed winner, so a central difference in float64 is
    # exact up to ~1e-16 / step; 1e-8 leaves ample room.
    features, rois, kw = tie_free_case(pool)
    rng = np.random.RandomState(1)
    upstream = rng.randn(len(rois), 2, 2, 2)
    f64 = features.astype(np.float64)
    pooled, argmax = psalign_pool_reference(f64, rois, dtype=np.float64, **kw)
    analytic = psalign_pool_grad_reference(f64.shape, rois, argmax, upstream, dtype=np.float64,
                                           **kw)
    step = 1e-4
    numeric = np.zeros_like(f64)
    for idx in np.ndindex(*f64.shape):
        plus, minus = f64.copy(), f64.copy()
        plus[idx] += step
        minus[idx] -= step
        lp = np.sum(psalign_pool_reference(plus, rois, dtype=np.float64, **kw)[0] * upstream)
        lm = np.sum(psalign_pool_reference(minus, rois, dtype=np.float64, **kw)[0] * upstream)
        numeric[idx] = (lp - lm) / (2 * step)
    assert np.abs(analytic).max() > 0.1
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-8)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('pool', POOLS)
def test_float32_gradient_matches_float64_reference(impl, pool):
    # The float64 reference gradient equals central differences (test above). The float32 op
    # differs only by rounding: sample coordinates and weights (relative ~1e-7) and a handful of
    # accumulated products of O(1) values, so 1e-5 absolute is >10x the expected error.
    features, rois, kw = tie_free_case(pool)
    upstream = np.random.RandomState(1).randn(len(rois), 2, 2, 2).astype(np.float32)
    f64 = features.astype(np.float64)
    _, argmax = psalign_pool_reference(f64, rois, dtype=np.float64, **kw)
    expected = psalign_pool_grad_reference(f64.shape, rois, argmax, upstream.astype(np.float64),
                                           dtype=np.float64, **kw)
    _, grad = run_op(impl, features, rois, upstream, **kw)
    np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize('pool', POOLS)
def test_pure_tf_float64_gradient_matches_numeric_jacobian(pool):
    features, rois, kw = tie_free_case(pool)
    with tf.Graph().as_default():
        f = tf.constant(features.astype(np.float64))
        pooled = ops.psalign_pool_tf(f, rois, **kw)
        assert pooled.dtype == tf.float64
        with tf.Session():
            analytic, numeric = tf.test.compute_gradient(
                f, features.shape, pooled, pooled.shape.as_list(),
                x_init_value=features.astype(np.float64), delta=1e-4)
    assert np.abs(analytic).max() > 0.1
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-8)


# ------------------------------------------------------------------------------- edge cases

@pytest.mark.parametrize('impl', IMPLS)
def test_roi_wholly_outside_gives_zero(impl):
    rng = np.random.RandomState(3)
    features = rng.randn(1, 6, 6, 8).astype(np.float32)
    features[0, 0, 0] = np.inf  # unused corners are skipped, not multiplied by a zero weight
    rois = np.array([[0, 200, 10, 300, 50],     # right of the map (x >= W/scale)
                     [0, -300, -90, -40, -20]],  # above-left (x, y <= -1 after scaling)
                    np.float32)
    pooled, grad = run_op(impl, features, rois, group_size=2, spatial_scale=1.0 / 16)
    assert np.all(pooled == 0)
    assert np.all(grad == 0)


@pytest.mark.parametrize('impl', IMPLS)
def test_roi_partly_outside_matches_reference(impl):
    rng = np.random.RandomState(4)
    features = rng.randn(1, 5, 7, 9).astype(np.float32)
    rois = np.array([[0, -40, -30, 30, 40], [0, 80, 50, 150, 120]], np.float32)
    kw = dict(group_size=3, sample_height=2, sample_width=2, spatial_scale=1.0 / 16)
    pooled, grad = run_op(impl, features, rois, **kw)
    ref_pooled, ref_grad = reference_pair(features, rois, np.ones((2, 3, 3, 1), np.float32), **kw)
    assert np.any(pooled == 0) and np.any(pooled != 0)
    np.testing.assert_allclose(pooled, ref_pooled, atol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-5)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('pool', POOLS)
def test_zero_size_roi_samples_one_point(impl, pool):
    # x1 == x2, y1 == y2: every bin and sample sits at (y1*s, x1*s) = (1.25, 2.5).
    features = ramp(4, 5)
    features = np.concatenate([features, 2 * features, -features, features + 1], axis=3)
    rois = np.array([[0, 40, 20, 40, 20]], np.float32)
    pooled, grad = run_op(impl, features, rois, group_size=2, spatial_scale=1.0 / 16, pool=pool)
    value = 10 * 1.25 + 2.5
    np.testing.assert_allclose(pooled[0, :, :, 0], [[value, 2 * value], [-value, value + 1]],
                               atol=1e-5)
    # All gradient lands on the 2x2 pixels around (1.25, 2.5), summing to G*G*K*1 in total.
    assert np.count_nonzero(grad.sum(axis=3)) == 4
    assert grad.sum() == pytest.approx(4.0, abs=1e-5)


@pytest.mark.parametrize('impl', IMPLS)
def test_no_rois(impl):
    features = np.random.RandomState(5).randn(2, 5, 6, 18).astype(np.float32)
    rois = np.zeros((0, 5), np.float32)
    upstream = np.zeros((0, 3, 3, 2), np.float32)
    pooled, grad = run_op(impl, features, rois, upstream, group_size=3)
    assert pooled.shape == (0, 3, 3, 2)
    assert grad.shape == features.shape and not grad.any()


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('batch_index', [2, -1, 7.5])
def test_batch_index_out_of_range(impl, batch_index):
    features = np.zeros((2, 4, 4, 4), np.float32)
    rois = np.array([[0, 0, 0, 10, 10], [batch_index, 0, 0, 10, 10]], np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match='batch ind'):
        run_op(impl, features, rois, group_size=2)


@pytest.mark.parametrize('impl', IMPLS)
def test_static_shapes(impl):
    with tf.Graph().as_default():
        f = tf.placeholder(tf.float32, [None, 22, 35, 490])
        r = tf.placeholder(tf.float32, [None, 5])
        pooled = ops.psalign_pool(f, r, group_size=7, spatial_scale=1.0 / 32, impl=impl)
        assert pooled.shape.as_list() == [None, 7, 7, 10]
        grad = tf.gradients(pooled, f)[0]
        assert grad.shape.as_list() == [None, 22, 35, 490]


def test_kernel_channels_not_multiple_of_bins():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='divisible|evenly'):
            ops.psalign_pool(tf.zeros([1, 4, 4, 10]), tf.zeros([1, 5]), group_size=3,
                             impl='kernel')


# --------------------------------------------------------------- kernel vs TF, determinism

def realistic_case(seed=7, num_rois=200):
    rng = np.random.RandomState(seed)
    features = rng.randn(1, 22, 35, 490).astype(np.float32)
    rois = random_rois(rng, num_rois, 1, 22, 35, 1.0 / 32)
    upstream = rng.randn(num_rois, 7, 7, 10).astype(np.float32)
    return features, rois, upstream


@pytest.mark.parametrize('pool', POOLS)
def test_kernel_matches_pure_tf(pool):
    features, rois, upstream = realistic_case()
    kw = dict(group_size=7, sample_height=2, sample_width=2, spatial_scale=1.0 / 32, pool=pool)
    k_pooled, k_grad = run_op('kernel', features, rois, upstream, **kw)
    t_pooled, t_grad = run_op('tf', features, rois, upstream, **kw)
    np.testing.assert_allclose(k_pooled, t_pooled, rtol=0, atol=1e-5)
    np.testing.assert_allclose(k_grad, t_grad, rtol=0, atol=1e-5)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('pool', POOLS)
def test_repeated_runs_bitwise_identical(impl, pool):
    features, rois, upstream = realistic_case(seed=8, num_rois=300)
    # Many RoIs on one batch image: backward scatters from many outputs into the same pixels.
    kw = dict(group_size=7, spatial_scale=1.0 / 32, pool=pool)
    first = run_op(impl, features, rois, upstream, threads=4, **kw)
    for _ in range(2):
        again = run_op(impl, features, rois, upstream, threads=4, **kw)
        assert np.array_equal(first[0], again[0])
        assert np.array_equal(first[1], again[1])


# ------------------------------------------------------------------- selection, loader, build

def test_impl_selection(monkeypatch):
    monkeypatch.delenv('LIGHTHEAD_OPS', raising=False)
    assert ops.resolve_impl() == 'kernel'
    monkeypatch.setenv('LIGHTHEAD_OPS', 'tf')
    assert ops.resolve_impl() == 'tf'
    assert ops.active_implementation() == 'tf'
    assert ops.resolve_impl('kernel') == 'kernel'
    assert ops.active_implementation('kernel') in ('kernel-cpu', 'kernel-cuda')
    monkeypatch.setenv('LIGHTHEAD_OPS', 'cuda')
    with pytest.raises(ValueError, match='LIGHTHEAD_OPS'):
        ops.resolve_impl()
    with pytest.raises(ValueError, match='pool'):
        ops.psalign_pool(None, None, pool='median', impl='tf')


def test_loader_ignores_library_built_from_other_sources(tmp_path):
    folder = tmp_path / ('tf-' + build.tf_version())
    folder.mkdir()
    (folder / build.CPU_LIB).write_bytes(b'')
    info = {'sources': 'not-the-current-digest'}
    (folder / build.INFO_FILE).write_text(json.dumps(info))
    assert _loader._usable_library(str(tmp_path)) is None
    info['sources'] = build.sources_digest()
    (folder / build.INFO_FILE).write_text(json.dumps(info))
    assert _loader._usable_library(str(tmp_path)) == os.path.join(str(folder), build.CPU_LIB)


def test_loader_builds_into_cache_when_package_folder_is_not_writable(tmp_path, monkeypatch):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')  # a folder below a file cannot be created, even by root
    cache = tmp_path / 'cache'
    monkeypatch.setattr(_loader, '_roots', lambda: [str(blocker / 'ops'), str(cache)])
    built = []

    def fake_build(root, cuda):  # records the call, writes what a real build leaves behind
        built.append(root)
        folder = build.build_dir(root)
        os.makedirs(folder)
        open(os.path.join(folder, build.CPU_LIB), 'wb').close()
        with open(os.path.join(folder, build.INFO_FILE), 'w') as f:
            json.dump({'sources': build.sources_digest()}, f)

    monkeypatch.setattr(build, 'build', fake_build)
    path = _loader._find_or_build()
    assert built == [str(cache)]
    assert path == os.path.join(build.build_dir(str(cache)), build.CPU_LIB)
    assert _loader._find_or_build() == path and len(built) == 1  # found, not rebuilt


def test_build_error_quotes_compiler_output(tmp_path):
    source = tmp_path / 'broken_op.cc'
    source.write_text('int broken( { return undeclared_name_xyz; }\n')
    with pytest.raises(build.BuildError) as info:
        build.compile_shared_library([str(source)], str(tmp_path / 'broken.so'))
    message = str(info.value)
    assert 'g++' in message and str(source) in message and '-shared' in message
    assert 'error' in message and 'broken_op.cc:1' in message


GPU_LIB_SMOKE = """
import numpy as np
from lighthead.compat import tf
from lighthead.ops.reference import psalign_pool_reference
lib = tf.load_op_library(%r)
rng = np.random.RandomState(0)
features = rng.randn(2, 5, 6, 18).astype(np.float32)
rois = np.array([[1, 3, 5, 70, 60], [0, -10, 20, 40, 90]], np.float32)
pooled, _ = lib.lighthead_ps_align_pool(features, rois, group_size=3, sample_height=2,
                                        sample_width=2, spatial_scale=1 / 16., pool='max')
with tf.Session() as sess:
    out = sess.run(pooled)
expected = psalign_pool_reference(features, rois, 3, 2, 2, 1 / 16.)[0]
print('OK' if np.array_equal(out, expected) else 'MISMATCH')
"""


def test_cuda_library_loads_and_runs_its_cpu_kernel():
    # The CUDA library (CPU + GPU kernels) is built whenever nvcc exists but loaded only by TF with
    # CUDA; loading it here (own process: the op may be registered once per process) proves it
    # links and registers, and its CPU kernel still matches the reference.
    folder = build.build_dir(build.DEFAULT_OUT)
    try:
        with open(os.path.join(folder, build.INFO_FILE)) as f:
            info = json.load(f)
    except OSError:
        info = {}
    if info.get('sources') != build.sources_digest() or not info.get('gpu'):
        pytest.skip('CUDA library not built for these sources (python -m lighthead.ops.build)')
    proc = subprocess.run([sys.executable, '-c', GPU_LIB_SMOKE % info['gpu']],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == 'OK'
