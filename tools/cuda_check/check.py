"""Check the PSAlignPool CUDA kernels against the numpy reference and time them, without TF.

Compiles harness.cu, which includes the same kernel header as the TF op
(lib/lighthead/ops/kernels/psalign_pool_gpu.cu.h), into a shared library with nvcc, loads it with
ctypes, compares forward and backward with lib/lighthead/ops/reference.py (loaded by path: this
machine needs numpy and nvcc, not TensorFlow or lighthead), then times 1000 RoIs on 490-channel
maps of 22x35 (scale 1/32) and 44x69 (scale 1/16).

    python tools/cuda_check/check.py [--compile-only] [--json] [--repeat 100]
                                     [--nvcc PATH] [--build-dir DIR]

Exit status 1 if a comparison fails.
"""
import argparse
import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
KERNEL_DIR = os.path.join(REPO, 'lib', 'lighthead', 'ops', 'kernels')
REFERENCE = os.path.join(REPO, 'lib', 'lighthead', 'ops', 'reference.py')
ARCH_FLAGS = ['-gencode', 'arch=compute_80,code=sm_80', '-gencode', 'arch=compute_90,code=sm_90',
              '-gencode', 'arch=compute_90,code=compute_90']

# (name, B, H, W, G, K, Sh, Sw, spatial_scale, image (h, w), RoIs)
CHECKS = [
    ('small-odd', 2, 7, 9, 3, 2, 2, 2, 1.0 / 16, (112, 144), 40),
    ('s32-490ch', 1, 22, 35, 7, 10, 2, 2, 1.0 / 32, (700, 1100), 48),
    ('s16-490ch', 2, 44, 69, 7, 10, 2, 2, 1.0 / 16, (700, 1100), 24),
    ('samples-1x3', 1, 13, 6, 2, 3, 1, 3, 1.0 / 8, (104, 48), 30),
    ('no-rois', 1, 5, 5, 2, 2, 2, 2, 1.0 / 16, (80, 80), 0),
]
TIMINGS = [  # (name, H, W, spatial_scale): 1000 RoIs, [1, H, W, 490], G 7, 2x2 samples
    ('22x35x490 s1/32', 22, 35, 1.0 / 32),
    ('44x69x490 s1/16', 44, 69, 1.0 / 16),
]
FORWARD_ATOL = 1e-6  # float32, same operations in the same order (no FMA): ~bit-identical
BACKWARD_ATOL = 1e-4  # float atomics add overlapping RoIs' contributions in any order


def load_reference():
    spec = importlib.util.spec_from_file_location('psalign_reference', REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_harness(nvcc, build_dir):
    os.makedirs(build_dir, exist_ok=True)
    out = os.path.join(build_dir, 'psalign_harness.so')
    cmd = ([nvcc, '-O3', '-std=c++17', '-shared', '-Xcompiler', '-fPIC'] + ARCH_FLAGS +
           ['-I', KERNEL_DIR, os.path.join(HERE, 'harness.cu'), '-o', out])
    start = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if proc.returncode != 0:
        sys.exit('nvcc failed:\n  %s\n%s%s' % (' '.join(cmd), proc.stdout, proc.stderr))
    return out, time.time() - start


class Harness:
    """ctypes view of harness.cu's extern "C" functions."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        f32, i32 = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int)
        c_int, c_float = ctypes.c_int, ctypes.c_float
        lib.psa_forward.argtypes = ([f32] + [c_int] * 4 + [f32] + [c_int] * 4 + [c_float, c_int] +
                                    [f32, i32, c_int, f32])
        lib.psa_backward.argtypes = ([f32] + [c_int] * 8 + [c_float, c_int] +
                                     [i32, f32, f32, c_int, f32])
        lib.psa_error_string.restype = ctypes.c_char_p
        self.lib = lib

    def _check(self, code):
        if code != 0:
            raise RuntimeError('CUDA error %d: %s' % (code, self.lib.psa_error_string(code).decode()))

    def device_name(self):
        buf = ctypes.create_string_buffer(256)
        self._check(self.lib.psa_device_name(buf, 256))
        return buf.value.decode()

    def forward(self, features, rois, g, sh, sw, scale, pool, iterations=0):
        features = np.ascontiguousarray(features, np.float32)
        rois = np.ascontiguousarray(rois, np.float32).reshape(-1, 5)
        b, h, w, c = features.shape
        top = np.zeros((len(rois), g, g, c // (g * g)), np.float32)
        argmax = np.zeros(top.shape, np.int32)
        ms = ctypes.c_float()
        self._check(self.lib.psa_forward(
            _ptr(features), b, h, w, c, _ptr(rois), len(rois), g, sh, sw, scale, pool == 'max',
            _ptr(top), argmax.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), iterations,
            ctypes.byref(ms)))
        return top, argmax, ms.value

    def backward(self, shape, rois, argmax, top_diff, g, sh, sw, scale, pool, iterations=0):
        rois = np.ascontiguousarray(rois, np.float32).reshape(-1, 5)
        argmax = np.ascontiguousarray(argmax, np.int32)
        top_diff = np.ascontiguousarray(top_diff, np.float32)
        diff = np.zeros(shape, np.float32)
        ms = ctypes.c_float()
        self._check(self.lib.psa_backward(
            _ptr(rois), shape[0], shape[1], shape[2], shape[3], len(rois), g, sh, sw, scale,
            pool == 'max', argmax.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), _ptr(top_diff),
            _ptr(diff), iterations, ctypes.byref(ms)))
        return diff, ms.value


def _ptr(array):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def check_case(harness, ref, case, pool, rng):
    """Forward vs the float32 reference; argmax vs the reference where the top two samples differ
    by > 1e-4; backward (with the GPU's argmax) vs the float64 reference gradient."""
    name, b, h, w, g, k, sh, sw, scale, (img_h, img_w), num_rois = case
    features = rng.randn(b, h, w, k * g * g).astype(np.float32)
    rois = ref.random_rois(rng, num_rois, img_h, img_w, batch=b)
    if num_rois:  # some RoIs partly or wholly off the map, and a zero-size one
        rois[0, 1:] = [-0.3 * img_w, -0.2 * img_h, 0.4 * img_w, 0.3 * img_h]
        rois[1, 1:] = [1.1 * img_w, 0.5 * img_h, 1.5 * img_w, 0.9 * img_h]
        rois[2, 3:] = rois[2, 1:3]
    kw = dict(group_size=g, sample_height=sh, sample_width=sw, spatial_scale=scale)
    top, argmax, _ = harness.forward(features, rois, g, sh, sw, scale, pool)
    ref_top, ref_argmax = ref.psalign_pool_reference(features, rois, pool=pool, **kw)
    result = {'case': name, 'pool': pool, 'rois': num_rois,
              'forward_max_err': float(np.abs(top - ref_top).max()) if top.size else 0.0}
    if pool == 'max' and num_rois:
        values = np.sort(ref.sample_values(features, rois, dtype=np.float64, **kw), axis=3)
        clear = (values[:, :, :, -1] - values[:, :, :, -2]) > 1e-4
        result['argmax_mismatches'] = int(np.sum((argmax != ref_argmax) & clear))
    else:
        result['argmax_mismatches'] = int(np.sum(argmax != -1)) if pool == 'avg' else 0
    top_diff = rng.randn(*top.shape).astype(np.float32)
    diff, _ = harness.backward(features.shape, rois, argmax, top_diff, g, sh, sw, scale, pool)
    ref_diff = ref.psalign_pool_grad_reference(features.shape, rois, argmax, top_diff, pool=pool,
                                               dtype=np.float64, **kw)
    result['backward_max_err'] = float(np.abs(diff - ref_diff).max())
    result['ok'] = (result['forward_max_err'] <= FORWARD_ATOL and
                    result['backward_max_err'] <= BACKWARD_ATOL and
                    result['argmax_mismatches'] == 0)
    return result


def time_case(harness, ref, timing, pool, repeat, rng):
    name, h, w, scale = timing
    features = rng.randn(1, h, w, 490).astype(np.float32)
    rois = ref.random_rois(rng, 1000, 700, 1100)
    top, argmax, fwd_ms = harness.forward(features, rois, 7, 2, 2, scale, pool, repeat)
    top_diff = rng.randn(*top.shape).astype(np.float32)
    _, bwd_ms = harness.backward(features.shape, rois, argmax, top_diff, 7, 2, 2, scale, pool,
                                 repeat)
    return {'map': name, 'pool': pool, 'rois': 1000, 'forward_ms': round(fwd_ms, 4),
            'backward_ms': round(bwd_ms, 4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--nvcc', default=shutil.which('nvcc') or '/usr/local/cuda/bin/nvcc')
    parser.add_argument('--build-dir', default=os.path.join(tempfile.gettempdir(),
                                                            'lighthead_cuda_check'))
    parser.add_argument('--compile-only', action='store_true', help='build the harness and stop')
    parser.add_argument('--repeat', type=int, default=100, help='timed launches per measurement')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    args = parser.parse_args(argv)

    path, seconds = compile_harness(args.nvcc, args.build_dir)
    report = {'harness': path, 'compile_s': round(seconds, 1)}
    if args.compile_only:
        print(json.dumps(report) if args.json else 'compiled %s in %.1f s' % (path, seconds))
        return 0
    harness, ref = Harness(path), load_reference()
    rng = np.random.RandomState(args.seed)
    report['device'] = harness.device_name()
    report['checks'] = [check_case(harness, ref, case, pool, rng)
                        for case in CHECKS for pool in ('max', 'avg')]
    report['timings'] = [time_case(harness, ref, timing, pool, args.repeat, rng)
                         for timing in TIMINGS for pool in ('max', 'avg')]
    report['ok'] = all(c['ok'] for c in report['checks'])
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print('device: %s, harness compiled in %.1f s' % (report['device'], seconds))
        for c in report['checks']:
            print('%-4s %-12s %-3s rois=%-3d forward err %.2e  backward err %.2e  argmax '
                  'mismatches %d' % ('ok' if c['ok'] else 'FAIL', c['case'], c['pool'], c['rois'],
                                     c['forward_max_err'], c['backward_max_err'],
                                     c['argmax_mismatches']))
        for t in report['timings']:
            print('%-16s %-3s %d RoIs: forward %.4f ms, backward %.4f ms (mean of %d)'
                  % (t['map'], t['pool'], t['rois'], t['forward_ms'], t['backward_ms'],
                     args.repeat))
    return 0 if report['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
