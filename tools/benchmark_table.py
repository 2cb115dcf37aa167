"""The README's scaling table: forward and end-to-end time over image sizes and RoI counts.

    python tools/benchmark_table.py --exp experiments/user [--sizes 400x600,600x1000,...]
        [--rois 100,300,1000] [--precision fp32] [--repeat 10] [--json FILE]

Runs :func:`lighthead.benchmark.run_benchmark` for every (size, RoIs) pair and prints a
Markdown table, then least-squares fits of how the cost grows:
``forward_ms ~ a + b * megapixels`` at the largest RoI count, and ``forward_ms ~ c + d * RoIs``
at each size.
"""
import argparse
import json

import numpy as np

from lighthead.config import load_experiment
from lighthead.benchmark import run_benchmark
from lighthead.utils.session import PRECISIONS

DEFAULT_SIZES = '400x600,600x1000,700x1100,800x1333'
DEFAULT_ROIS = '100,300,1000'


def parse_sizes(text):
    sizes = []
    for item in text.split(','):
        try:
            height, width = (int(v) for v in item.lower().split('x'))
        except ValueError:
            raise argparse.ArgumentTypeError('size %r is not HEIGHTxWIDTH' % item)
        sizes.append((height, width))
    return sizes


def parse_ints(text):
    try:
        return [int(v) for v in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a comma-separated list of integers' % text)


def fit_line(xs, ys):
    """(intercept, slope) of the least-squares line through the points."""
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(intercept), float(slope)


def markdown(results, sizes, rois):
    lines = ['| size (H×W) | RoIs | forward_ms | end_to_end_ms | GFLOPs | GFLOP/s |',
             '|---|---|---|---|---|---|']
    for (height, width) in sizes:
        for count in rois:
            r = results[(height, width, count)]
            lines.append('| %d×%d | %d | %.1f | %.1f | %.2f | %.0f |' % (
                height, width, count, r['forward_ms'], r['end_to_end_ms'], r['gflops'],
                r['gflops'] / r['forward_ms'] * 1000.0))
    top = max(rois)
    mpix = [h * w / 1e6 for h, w in sizes]
    a, b = fit_line(mpix, [results[(h, w, top)]['forward_ms'] for h, w in sizes])
    lines.append('')
    lines.append('- forward_ms at %d RoIs ~ %.1f + %.1f ms per megapixel' % (top, a, b))
    for (height, width) in sizes:
        c, d = fit_line(rois, [results[(height, width, n)]['forward_ms'] for n in rois])
        base = results[(height, width, top)]['forward_ms']
        lines.append('- %d×%d: forward_ms ~ %.1f + %.2f ms per 100 RoIs (RoI part at %d: %.0f %%)'
                     % (height, width, c, 100 * d, top, 100.0 * d * top / base))
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--exp', required=True, help='experiment folder (holds config.py)')
    p.add_argument('--sizes', type=parse_sizes, default=parse_sizes(DEFAULT_SIZES))
    p.add_argument('--rois', type=parse_ints, default=parse_ints(DEFAULT_ROIS))
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--precision', choices=PRECISIONS, default='fp32')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeat', type=int, default=10)
    p.add_argument('--json', default=None, help='also write every result to this file')
    args = p.parse_args(argv)
    cfg, network_cls = load_experiment(args.exp)
    results = {}
    for (height, width) in args.sizes:
        for count in args.rois:
            results[(height, width, count)] = run_benchmark(
                cfg, height, width, num_rois=count, threads=args.threads,
                precision=args.precision, warmup=args.warmup, repeat=args.repeat,
                network_cls=network_cls)
            r = results[(height, width, count)]
            print('%dx%d %d RoIs: forward %.1f ms, end to end %.1f ms (load %.2f)' % (
                height, width, count, r['forward_ms'], r['end_to_end_ms'], r['load_average']),
                flush=True)
    print(markdown(results, args.sizes, args.rois))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump([dict(r) for r in results.values()], f, indent=1)


if __name__ == '__main__':
    main()
