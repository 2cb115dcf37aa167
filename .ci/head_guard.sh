#!/usr/bin/env bash
# CI guard (issue 19): on real data the R-CNN head must learn, not stay at chance.
# A short training of experiments/treecrowns, with its recipe, on its 4 most crowded training
# tiles at 600 px without augmentation (290 steps, about 5 minutes on 2 cores), then
# tools/check_health.py over the last 50 steps: balanced accuracy on the sampled RoIs >= 0.6,
# score spread >= 0.05 and loss_cls <= 0.45. The original's head recipe stays at chance here
# (balanced accuracy 0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$py -m lighthead.datasets.tiles
$py - data/generated/treecrowns/annotations/train.json "$work/train4.json" <<'PY'
import collections, json, sys
coco = json.load(open(sys.argv[1]))
crowns = collections.Counter(a['image_id'] for a in coco['annotations'])
keep = {image_id for image_id, _ in crowns.most_common(4)}
coco['images'] = [i for i in coco['images'] if i['id'] in keep]
coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] in keep]
json.dump(coco, open(sys.argv[2], 'w'))
print('head guard: %d tiles, %d crowns' % (len(coco['images']), len(coco['annotations'])))
PY
OUTPUT_DIR="$work/run" $py experiments/treecrowns/train.py -d 0-1 \
    train_source="$work/train4.json" max_epoch=3 warm_iter=50 'lr_steps=[[3,1.0]]' \
    image_short_size=600 image_max_size=600 augment.vflip=False augment.rot90=False \
    augment.brightness=0 augment.contrast=0 augment.saturation=0 augment.scale_range=None
$py tools/check_health.py "$work/run" --window 50 --min-balanced-acc 0.6 --min-score-std 0.05 \
    --max-loss-cls 0.45
