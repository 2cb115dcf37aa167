"""PSAlignPool: position-sensitive RoIAlign pooling of Light-Head R-CNN (SPEC 3).

``psalign_pool(features, rois, ...) -> [R, G, G, K]`` float32.

* ``features`` [B, H, W, K*G*G] NHWC; ``rois`` [R, 5] float32 rows (batch_index, x1, y1, x2, y2)
  in network-input pixels (inclusive-corner boxes, SPEC 2.1, but see the geometry below).
* Geometry as the original: no rounding, no +1, no half-pixel offset. With s = spatial_scale,
  ``xs = s*x1``, ``xe = s*x2``, ``bin_w = max(xe - xs, 0) / G`` (same for y); sample (i, j) of
  bin (ph, pw) lies at ``y = ys + bin_h*(ph + (i + 0.5)/Sh)``, ``x = xs + bin_w*(pw + (j + 0.5)/Sw)``
  and feature pixel k sits at coordinate k.
* Output (n, ph, pw, k) reads input channel ``c = (k*G + ph)*G + pw``.
* Bilinear interpolation: each of the four corners outside [0, H-1] x [0, W-1] contributes zero
  on its own (no clamping), so values fade to zero one pixel outside the map; a sample wholly
  outside (y <= -1, y >= H, likewise x) is 0.
* **Differs from the original on purpose:** when a sample coordinate is an exact integer, that
  pixel is counted once. The original sums floor and ceil corners, which coincide there, so it
  counts the pixel twice (four times when both coordinates are integers) in the forward and
  backward pass. Here the +1 neighbour of an integer coordinate has weight 0 and is skipped.
* ``pool='max'``: maximum of the Sh*Sw samples; among equal samples the first in row-major
  order wins and only its four corners get gradient. ``pool='avg'``: the mean of the samples,
  gradient spread over all of them. Never any gradient to ``rois``.
* R = 0 gives [0, G, G, K] and a zero gradient. A batch index outside [0, B) is an
  InvalidArgumentError when the graph runs.

Implementations, chosen by ``impl`` or, when it is None, the environment variable
``LIGHTHEAD_OPS``: ``'kernel'`` (default) is the compiled op ``LightheadPSAlignPool`` (a
multithreaded C++ CPU kernel, plus a CUDA kernel when TF has CUDA; see ``_loader`` and ``build``),
compiled on first use if needed; ``'tf'`` is ``psalign_pool_tf``, pure TF ops, and loads or
compiles nothing. The two agree to 1e-5 (tested). Both compute every sample with the same float32
operations in the same order (the CUDA kernel too: no FMA contraction), so the max picks the same
winning sample and the gradients agree as well; avg sums may differ in the last bit.
"""
import os

from lighthead.ops.pure_tf import psalign_pool_tf

IMPLEMENTATIONS = ('kernel', 'tf')
POOLS = ('max', 'avg')


def resolve_impl(impl=None):
    """'kernel' or 'tf': ``impl`` if given, else $LIGHTHEAD_OPS, else 'kernel'."""
    chosen = impl if impl is not None else (os.environ.get('LIGHTHEAD_OPS') or 'kernel')
    if chosen not in IMPLEMENTATIONS:
        raise ValueError('PSAlignPool implementation must be one of %s (argument impl or '
                         'LIGHTHEAD_OPS), got %r' % (IMPLEMENTATIONS, chosen))
    return chosen


def active_implementation(impl=None):
    """Which code ``psalign_pool(..., impl=impl)`` runs: 'tf', 'kernel-cpu' (the CPU library) or
    'kernel-cuda' (the library with CPU and CUDA kernels). Loads the library for 'kernel'."""
    if resolve_impl(impl) == 'tf':
        return 'tf'
    from lighthead.ops import _loader
    return 'kernel-cuda' if _loader.has_cuda_kernel() else 'kernel-cpu'


def psalign_pool(features, rois, group_size=7, sample_height=2, sample_width=2,
                 spatial_scale=1.0 / 16, pool='max', impl=None):
    """Position-sensitive RoIAlign pooling; see the module docstring.

    features: [B, H, W, K*G*G] float32 NHWC. rois: [R, 5] float32 (batch_index, x1, y1, x2, y2)
    in network-input pixels. Returns [R, G, G, K] float32 with G = group_size.
    """
    for name, value in (('group_size', group_size), ('sample_height', sample_height),
                        ('sample_width', sample_width)):
        if int(value) != value or value < 1:
            raise ValueError('%s must be a positive integer, got %r' % (name, value))
    if pool not in POOLS:
        raise ValueError('pool must be one of %s, got %r' % (POOLS, pool))
    kwargs = dict(group_size=int(group_size), sample_height=int(sample_height),
                  sample_width=int(sample_width), spatial_scale=float(spatial_scale), pool=pool)
    if resolve_impl(impl) == 'tf':
        return psalign_pool_tf(features, rois, **kwargs)
    from lighthead.ops import _loader
    pooled, _ = _loader.library().lighthead_ps_align_pool(features, rois, **kwargs)
    return pooled
