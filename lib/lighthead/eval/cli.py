"""``python test.py -d 0 -se 30 [-ee 32] [-s] [--precision bf16] [--output DIR]``: evaluate
epoch checkpoints.

Records are split into contiguous shards, one per device; each shard runs in its own process
(one device: in this process). Detections go to ``eval_dump/epoch_N.json`` (COCO results), the
metrics to ``eval_dump/epoch_N_metrics.json``; the COCO summary and a per-class AP table are
appended to ``eval_dump/results.txt``. The dataset format (``lighthead.datasets.registry``) gives
the COCO ground truth and may add metrics of its own (VOC: the VOC07 11-point and area mAP).
``-s`` draws detections into ``vis_epoch_N/``. ``--precision bf16`` runs the graph with oneDNN
auto mixed precision and names its files ``epoch_N_bf16*``.

``eval_groups = {name: regex}`` adds AP and AP50 per group of val images (regex searched in the
image file name, e.g. one group per site): ``groups`` in the metrics JSON and a table in
results.txt. ``eval_rpn_only = True`` (default) also scores the RPN alone: the graph's
``proposals/{boxes,scores}`` (the best ``TEST.MAX_PER_IMAGE`` proposals by objectness, fetched in
the same session run as the detections) as class-agnostic detections of category 1 (pycocotools
``useCats = 0`` when there are several classes), overall and per group: ``rpn_only`` in the
metrics JSON, ``eval_dump/epoch_N_rpn_only.json`` (COCO results) and the ``RPN-only AP`` columns
of the table. The gap between the two APs is what the R-CNN head adds.
"""
import argparse
import json
import multiprocessing
import os
import time

from tqdm import tqdm

from lighthead.checkpoint import (CheckpointMismatchError, CheckpointNotFoundError,
                                  resolve_checkpoint)
from lighthead.datasets import data_spec, get_format, load_dataset
from lighthead.eval.coco_eval import coco_evaluate, group_table, load_coco_gt, per_class_table
from lighthead.utils.session import PRECISIONS


def build_parser():
    p = argparse.ArgumentParser(description='Evaluate Light-Head R-CNN checkpoints.')
    p.add_argument('-d', '--devices', default='0', help="devices, e.g. '0' or '0-3'")
    p.add_argument('-se', '--start_epoch', type=int, default=1, help='first epoch to evaluate')
    p.add_argument('-ee', '--end_epoch', type=int, default=-1, help='last epoch (default: -se)')
    p.add_argument('-s', '--show_image', action='store_true', help='write PNGs of detections')
    p.add_argument('--precision', choices=PRECISIONS, default='fp32',
                   help='bf16: oneDNN auto mixed precision (default fp32)')
    p.add_argument('--output', default=None, help='output folder (default: the config output_dir)')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE', help='config overrides')
    return p


def run_shard(cfg, network_cls, checkpoint, records, vis_dir=None, position=0, num_shards=1,
              precision='fp32'):
    """``(detections, proposals)`` for ``records``: lists of dicts (image_id, category, score,
    box); ``proposals`` (category 1) is None unless ``cfg.eval_rpn_only`` and the network
    outputs them."""
    from lighthead.eval.predictor import Predictor
    from lighthead.utils.session import session_config
    from lighthead.utils.vis import draw_detections, write_png
    threads = max(1, (os.cpu_count() or 1) // num_shards)
    predictor = Predictor(cfg, network_cls(), checkpoint, session_config(threads, precision),
                          proposals=cfg.eval_rpn_only)
    detections, proposals = [], []
    try:
        for rec in tqdm(records, desc='shard %d' % position, position=position, leave=False):
            # eval_tile_size > 0: sliding windows merged by lighthead.eval.tiling (at most
            # TEST.MAX_PER_IMAGE per window, no further cut per image).
            det, raw = predictor.predict_file(rec['fpath'], cfg.eval_tile_size,
                                              cfg.eval_tile_overlap)
            for box, score, cls in zip(det['boxes'], det['scores'], det['classes']):
                detections.append({'image_id': rec['image_id'], 'category': int(cls),
                                   'score': float(score), 'box': [float(v) for v in box]})
            if predictor.proposals:
                for box, score in zip(det['proposal_boxes'], det['proposal_scores']):
                    proposals.append({'image_id': rec['image_id'], 'category': 1,
                                      'score': float(score), 'box': [float(v) for v in box]})
            if vis_dir:
                image = draw_detections(raw, det['boxes'], det['scores'], det['classes'],
                                        cfg.class_names, cfg.TEST.VIS_THRESH)
                name = os.path.splitext(os.path.basename(rec['fpath']))[0]
                write_png(os.path.join(vis_dir, name + '.png'), image)
    finally:
        predictor.close()
    return detections, (proposals if predictor.proposals else None)


def _run_shard_star(args):
    return run_shard(*args)


def detect_all(cfg, network_cls, checkpoint, records, num_shards, vis_dir=None,
               precision='fp32'):
    """Run all records, sharded contiguously over ``num_shards`` processes; returns
    ``(detections, proposals)`` as :func:`run_shard`."""
    if num_shards <= 1:
        return run_shard(cfg, network_cls, checkpoint, records, vis_dir, precision=precision)
    k = (len(records) + num_shards - 1) // num_shards
    shards = [records[i * k:(i + 1) * k] for i in range(num_shards)]
    jobs = [(cfg, network_cls, checkpoint, s, vis_dir, i, num_shards, precision)
            for i, s in enumerate(shards) if s]
    with multiprocessing.get_context('spawn').Pool(len(jobs)) as pool:
        parts = pool.map(_run_shard_star, jobs)
    detections = [d for part, _ in parts for d in part]
    if any(p is None for _, p in parts):
        return detections, None
    return detections, [d for _, part in parts for d in part]


def to_coco_results(detections, category_ids):
    """Our detections -> COCO results (bbox [x, y, w, h] with w = x2 - x1 + 1)."""
    out = []
    for d in detections:
        x1, y1, x2, y2 = d['box']
        out.append({'image_id': d['image_id'], 'category_id': int(category_ids[d['category']]),
                    'score': round(d['score'], 5),
                    'bbox': [round(x1, 2), round(y1, 2), round(x2 - x1 + 1, 2),
                             round(y2 - y1 + 1, 2)]})
    return out


def evaluate_results(gt, results, rpn_results=None, groups=None, class_agnostic_rpn=False):
    """COCO metrics of ``results`` (COCO results list) against ``gt`` (path, dict or ``COCO``),
    overall and per group (``groups``: ``{name: regex on the image file name}`` or None), and
    of the RPN-only ``rpn_results`` (None: not measured) scored the same way, class-agnostic
    (``useCats = 0``) when ``class_agnostic_rpn``.

    Returns ``(metrics, summary, table)``: metrics as :func:`coco_evaluate`'s, plus
    ``rpn_only`` (the 12 numbers, ``images`` and ``groups``) when ``rpn_results`` is given;
    summary: COCOeval's printout of ``results``; table: :func:`group_table` text, '' when
    there are neither groups nor RPN results.
    """
    coco_gt = load_coco_gt(gt) if not hasattr(gt, 'loadRes') else gt
    groups = dict(groups) if groups else None
    metrics, summary = coco_evaluate(coco_gt, results, groups)
    rpn_metrics = None
    if rpn_results is not None:
        rpn_metrics, _ = coco_evaluate(coco_gt, rpn_results, groups,
                                       class_agnostic=class_agnostic_rpn)
        rpn_metrics.pop('per_class')
        rpn_metrics.pop('ungrouped_images', None)
        metrics['rpn_only'] = rpn_metrics
    table = group_table(metrics, rpn_metrics) if (groups or rpn_metrics is not None) else ''
    return metrics, summary, table


def evaluate_epoch(cfg, network_cls, epoch, dataset, gt, num_shards=1, show=False,
                   precision='fp32'):
    """Evaluate ``epoch_<epoch>.ckpt`` of ``cfg.model_dump_dir``; returns the metrics dict.

    Raises :class:`lighthead.checkpoint.CheckpointNotFoundError` when that checkpoint does not
    exist, :class:`lighthead.checkpoint.CheckpointMismatchError` when it does not fit the
    network (:func:`main` turns both into one ``lighthead: ...`` line and a non-zero exit).
    """
    checkpoint = resolve_checkpoint(cfg.model_dump_dir, epoch=epoch)
    os.makedirs(cfg.eval_dir, exist_ok=True)
    name = 'epoch_%d' % epoch + ('' if precision == 'fp32' else '_' + precision)
    vis_dir = None
    if show:
        vis_dir = os.path.join(cfg.eval_dir, 'vis_' + name)
        os.makedirs(vis_dir, exist_ok=True)
    start = time.time()
    detections, proposals = detect_all(cfg, network_cls, checkpoint, dataset.records,
                                       num_shards, vis_dir, precision)
    seconds = time.time() - start
    results = to_coco_results(detections, dataset.category_ids)
    dump = os.path.join(cfg.eval_dir, name + '.json')
    with open(dump, 'w') as f:
        json.dump(results, f)
    rpn_results = None
    if proposals is not None:
        rpn_results = to_coco_results(proposals, dataset.category_ids)
        with open(os.path.join(cfg.eval_dir, name + '_rpn_only.json'), 'w') as f:
            json.dump(rpn_results, f)
    metrics, summary, table = evaluate_results(
        gt, results, rpn_results, cfg.eval_groups or None,
        class_agnostic_rpn=len(dataset.class_names) > 2)
    text = ['', 'evaluation epoch %d, %s (%d images, %.1f s)' % (
        epoch, precision, len(dataset.records), seconds),
            summary.rstrip('\n'), per_class_table(metrics['per_class']).rstrip('\n')]
    if table:
        text.append(table.rstrip('\n'))
    if cfg.eval_rpn_only and proposals is None:
        text.append('RPN-only AP: not measured (the network has no proposal_boxes/'
                    'proposal_scores test outputs)')
    for key, extra, line in get_format(cfg.dataset_format).extra_metrics(dataset, detections):
        metrics[key] = extra
        text.append(line)
    with open(os.path.join(cfg.eval_dir, name + '_metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=2)
    with open(os.path.join(cfg.eval_dir, 'results.txt'), 'a') as f:
        f.write('\n'.join(text) + '\n')
    print('\n'.join(text))
    return metrics


def main(cfg, network_cls, argv=None):
    """Entry point used by every experiment's ``test.py``."""
    from lighthead.config import apply_overrides, update_config
    from lighthead.utils.devices import parse_devices
    args = build_parser().parse_args(argv)
    try:
        if args.output:
            update_config(cfg, output_dir=args.output)
        apply_overrides(cfg, args.overrides)
        devices = parse_devices(args.devices)
    except (KeyError, ValueError) as e:
        raise SystemExit('lighthead: %s' % (e.args[0] if e.args else e))
    end = args.start_epoch if args.end_epoch < 0 else args.end_epoch
    if end < args.start_epoch:
        raise SystemExit('lighthead: -ee/--end_epoch %d is before -se/--start_epoch %d: no '
                         'epoch to evaluate (give -ee >= -se, or leave -ee out for epoch %d '
                         'alone)' % (end, args.start_epoch, args.start_epoch))
    dataset = load_dataset(cfg, 'eval')  # also resolves class names the config leaves open
    gt = get_format(cfg.dataset_format).coco_ground_truth(dataset, data_spec(cfg, 'eval'))
    try:
        return {epoch: evaluate_epoch(cfg, network_cls, epoch, dataset, gt, len(devices),
                                      args.show_image, args.precision)
                for epoch in range(args.start_epoch, end + 1)}
    except (CheckpointNotFoundError, CheckpointMismatchError) as e:
        raise SystemExit('lighthead: %s' % e)
