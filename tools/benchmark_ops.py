"""Time PSAlignPool on the CPU: the C++ kernel against the pure-TF implementation.

1000 proposal-like RoIs in a 700x1100 image on the two Light-Head maps: [1, 22, 35, 490] at
spatial_scale 1/32 (Xception*, setting S) and [1, 44, 69, 490] at 1/16; G = 7, 2x2 samples.
Prints medians (ms) of the forward pass and of forward + backward (the gradient w.r.t. the
features); backward_ms is their difference.

    python tools/benchmark_ops.py [--pool max|avg|both] [--rois 1000] [--threads 0]
                                  [--warmup 3] [--repeat 20] [--json]
"""
import argparse
import json
import platform
import time

import numpy as np

from lighthead.compat import tf
from lighthead.ops import psalign_pool
from lighthead.ops.reference import random_rois

MAPS = [  # (name, H, W, spatial_scale)
    ('22x35x490 s1/32', 22, 35, 1.0 / 32),
    ('44x69x490 s1/16', 44, 69, 1.0 / 16),
]
IMAGE_HW = (700, 1100)


def median_ms(sess, target, warmup, repeat):
    for _ in range(warmup):
        sess.run(target)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sess.run(target)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def bench_one(impl, pool, height, width, scale, args, rng):
    features = rng.randn(1, height, width, 490).astype(np.float32)
    rois = random_rois(rng, args.rois, *IMAGE_HW)
    upstream = rng.randn(args.rois, 7, 7, 10).astype(np.float32)
    with tf.Graph().as_default():
        # Variables, not constants, so grappler cannot fold the op away.
        f = tf.Variable(features, trainable=False)
        r = tf.Variable(rois, trainable=False)
        pooled = psalign_pool(f, r, group_size=7, sample_height=2, sample_width=2,
                              spatial_scale=scale, pool=pool, impl=impl)
        grad = tf.gradients(pooled, f, grad_ys=tf.constant(upstream))[0]
        config = tf.ConfigProto(intra_op_parallelism_threads=args.threads,
                                inter_op_parallelism_threads=1)
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            forward = median_ms(sess, pooled.op, args.warmup, args.repeat)
            both = median_ms(sess, grad.op, args.warmup, args.repeat)
    return {'forward_ms': round(forward, 3), 'forward_backward_ms': round(both, 3),
            'backward_ms': round(both - forward, 3)}


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pool', choices=['max', 'avg', 'both'], default='max')
    parser.add_argument('--rois', type=int, default=1000)
    parser.add_argument('--threads', type=int, default=0,
                        help='intra-op threads (0: TensorFlow default, all cores)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    args = parser.parse_args(argv)

    pools = ['max', 'avg'] if args.pool == 'both' else [args.pool]
    results = []
    for name, height, width, scale in MAPS:
        for pool in pools:
            for impl in ('kernel', 'tf'):
                rng = np.random.RandomState(args.seed)  # same data for both implementations
                row = {'map': name, 'pool': pool, 'impl': impl, 'rois': args.rois}
                row.update(bench_one(impl, pool, height, width, scale, args, rng))
                results.append(row)
    report = {'tf_version': tf.VERSION,
              'cpu': cpu_name(), 'threads': args.threads, 'warmup': args.warmup,
              'repeat': args.repeat, 'results': results}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print('TF %s, %s, threads %s, median of %d' % (report['tf_version'], report['cpu'],
                                                   args.threads or 'default', args.repeat))
    print('%-16s %-4s %-7s %11s %11s %20s' % ('map', 'pool', 'impl', 'forward ms',
                                              'backward ms', 'forward+backward ms'))
    for r in results:
        print('%-16s %-4s %-7s %11.3f %11.3f %20.3f' % (r['map'], r['pool'], r['impl'],
                                                         r['forward_ms'], r['backward_ms'],
                                                         r['forward_backward_ms']))


if __name__ == '__main__':
    main()
