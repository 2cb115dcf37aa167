"""Time an experiment's Light-Head R-CNN test graph on this machine (SPEC 5.6).

    python tools/benchmark.py --exp experiments/user --height 700 --width 1100 [--rois 1000]
        [--threads T] [--precision fp32|bf16] [--peak [--peak-size 4096]] [--warmup 3]
        [--repeat 10] [--no-fold-bn] [--profile] --json

The graph is the experiment's own network (``network_desp.Network`` of ``--exp``, bound to its
``config.py``: ``lighthead.config.load_experiment``). Random weights; medians after warm-up.
What each figure measures (forward, end to end, stages, forced RoI count, FLOPs, peak): see
``lighthead.benchmark``.
"""
import argparse
import json
import sys

from lighthead.config import load_experiment
from lighthead.benchmark import run_benchmark
from lighthead.utils.session import PRECISIONS, UnsupportedPrecision


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--exp', required=True,
                   help='experiment folder (holds config.py and network_desp.py)')
    p.add_argument('--height', type=int, required=True, help='network input height')
    p.add_argument('--width', type=int, required=True, help='network input width')
    p.add_argument('--rois', type=int, default=None,
                   help='RoIs per image (default: the config TEST.RPN_POST_NMS_TOP_N)')
    p.add_argument('--threads', type=int, default=None,
                   help='intra- and inter-op threads (default: logical CPU count)')
    p.add_argument('--precision', choices=PRECISIONS, default='fp32')
    p.add_argument('--peak', action='store_true',
                   help='also measure the float32 matmul peak and report peak_fraction')
    p.add_argument('--peak-size', type=int, default=4096,
                   help='matrix size of the peak measurement (default 4096)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeat', type=int, default=10)
    p.add_argument('--no-fold-bn', dest='fold_bn', action='store_false',
                   help='time the graph with variables and separate BN ops (default: the '
                        'frozen graph with BN folded into the convolutions, as test.py runs)')
    p.add_argument('--profile', action='store_true',
                   help='add per-op profiles (RunMetadata step stats) under "profile"')
    p.add_argument('--json', action='store_true', help='print one JSON object (else a summary)')
    return p


def summary(r):
    lines = ['%s\n%dx%d, %d RoIs, %d threads, %s, TF %s, PSAlign %s, BN %s' % (
        r['cpu'], r['height'], r['width'], r['rois'], r['threads'], r['precision'],
        r['tf_version'], r['psalign_impl'], 'folded' if r['fold_bn'] else 'separate'),
        'forward %.1f ms (%.1f fps), end to end %.1f ms, %.1f GFLOPs' % (
            r['forward_ms'], r['fps'], r['end_to_end_ms'], r['gflops'])]
    lines.append('stages, each timed on its own (fed the outputs of the stages before it):')
    lines += ['  %-18s %8.2f ms' % (k, v) for k, v in r['stages'].items()]
    lines.append('  %-18s %8.2f ms' % ('(sum)', r['stages_sum_ms']))
    if r['peak_gflops'] is not None:
        lines.append('peak %.1f GFLOP/s, fraction %.3f' % (r['peak_gflops'], r['peak_fraction']))
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ('height', 'width', 'rois', 'threads', 'repeat', 'peak_size'):
        value = getattr(args, name)
        if value is not None and value < 1:
            sys.exit('benchmark.py: --%s must be positive, got %d'
                     % (name.replace('_', '-'), value))
    try:
        cfg, network_cls = load_experiment(args.exp)
    except (IOError, ImportError) as e:
        sys.exit('benchmark.py: %s' % e)
    try:
        result = run_benchmark(cfg, args.height, args.width, num_rois=args.rois,
                               threads=args.threads, precision=args.precision,
                               peak_size=args.peak_size if args.peak else None,
                               warmup=max(args.warmup, 0), repeat=args.repeat,
                               profile=args.profile, fold_bn=args.fold_bn,
                               network_cls=network_cls)
    except UnsupportedPrecision as e:
        sys.exit('benchmark.py: %s' % e)
    print(json.dumps(result) if args.json else summary(result))
    return result


if __name__ == '__main__':
    main()
