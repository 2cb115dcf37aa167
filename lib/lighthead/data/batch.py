"""One training batch as a deterministic function of its task index.

Task ``k`` is tower ``k % T`` of step ``k // T`` (``T`` towers). Step ``s`` lies in data
epoch ``e = s // steps_per_epoch`` at position ``i = s % steps_per_epoch``; the epoch's order
is a permutation seeded by ``(seed, e)``, and the batch takes records
``perm[(i * T + tower) * B : + B]``. Its augmentation (one short side for the batch, one
flip coin per image) is seeded by ``(seed, step, tower)``. So any step can be rebuilt anywhere, which makes resuming exact and
lets worker processes share the work without coordination.
"""
import numpy as np

from ..datasets.records import bad_record
from .transforms import ImageReadError, hflip_boxes, normalize, read_image, resize_short_max


def batch_settings(cfg, num_towers, steps_per_epoch):
    """The plain-dict settings a :class:`BatchMaker` needs, taken from the config."""
    sizes = cfg.train_short_sizes or [cfg.image_short_size]
    return {
        'batch_size': int(cfg.train_batch_per_gpu),
        'num_towers': int(num_towers),
        'steps_per_epoch': int(steps_per_epoch),
        'seed': int(cfg.seed),
        'short_sizes': [int(s) for s in sizes],
        'max_size': int(cfg.image_max_size),
        'flip': bool(cfg.train_flip),
        'max_boxes': int(cfg.max_boxes_of_image),
        'mean': [float(m) for m in cfg.image_mean],
        'skip_bad': bool(cfg.skip_bad_records),
    }


class BatchMaker(object):
    """Builds batches from ``records`` (validated, each with a non-ignore box).

    ``make(k)`` returns ``(batch, bad, truncated)``: ``batch`` is a dict with
    ``data`` float32 ``[B, Hp, Wp, 3]`` (RGB minus means, zero padding bottom/right),
    ``im_info`` float32 ``[B, 6]`` = ``(resized_h, resized_w, scale, orig_h, orig_w, num_gt)``
    and ``boxes`` float32 ``[B, max_boxes, 5]`` = ``(x1, y1, x2, y2, cls)`` in resized pixels
    (rows ``[0:num_gt]`` valid, non-ignore boxes first, ``cls = -1`` for ignore regions,
    zeros after); ``bad`` lists the BadRecordErrors of records skipped and replaced
    (``skip_bad``; else the first one is raised); ``truncated`` counts images that had more
    than ``max_boxes`` boxes (the first ``max_boxes`` rows are kept).
    """

    def __init__(self, records, settings):
        self.records = records
        self.s = settings
        self._perm_epoch = None
        self._perm = None

    def permutation(self, epoch):
        """Record order of data epoch ``epoch``: a permutation seeded by ``(seed, epoch)``."""
        if self._perm_epoch != epoch:
            rng = np.random.RandomState([self.s['seed'], 0, epoch])
            self._perm = rng.permutation(len(self.records))
            self._perm_epoch = epoch
        return self._perm

    def make(self, k):
        s = self.s
        step, tower = divmod(k, s['num_towers'])
        epoch, pos = divmod(step, s['steps_per_epoch'])
        perm = self.permutation(epoch)
        n, bsz = len(perm), s['batch_size']
        base = (pos * s['num_towers'] + tower) * bsz
        rng = np.random.RandomState([s['seed'], 1, step, tower])
        short = s['short_sizes'][rng.randint(len(s['short_sizes']))]
        flips = rng.randint(2, size=bsz).astype(bool) & s['flip']

        images, bad, truncated = [], [], 0
        replacement = base + bsz
        for j in range(bsz):
            rec = self.records[perm[base + j]]
            while True:
                try:
                    image = self._prepare(rec, short, flips[j])
                    break
                except ImageReadError as e:
                    err = bad_record(rec, str(e), path=rec['fpath'])
                if not s['skip_bad']:
                    raise err
                bad.append(err)
                if len(bad) >= n:
                    raise RuntimeError('no readable image among the %d training records; '
                                       'last error: %s' % (n, err))
                rec = self.records[perm[replacement % n]]
                replacement += 1
            truncated += image[1].shape[0] > s['max_boxes']
            images.append(image)
        return self._assemble(images), bad, truncated

    def _prepare(self, rec, short, flip):
        """One record -> (normalised image, gt rows [n, 5], im_info row)."""
        raw = read_image(rec['fpath'])
        if raw.shape[:2] != (rec['height'], rec['width']):
            raise ImageReadError('image %s is %dx%d (w x h) but its annotation says %dx%d' % (
                rec['fpath'], raw.shape[1], raw.shape[0], rec['width'], rec['height']))
        img, scale = resize_short_max(raw, short, self.s['max_size'])
        h, w = img.shape[:2]
        order = np.argsort(rec['ignore'], kind='stable')
        boxes = rec['boxes'][order] * np.float32(scale)
        np.clip(boxes[:, 0::2], 0, w - 1, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h - 1, out=boxes[:, 1::2])
        cls = rec['classes'][order].astype(np.float32)
        cls[rec['ignore'][order]] = -1
        if flip:
            img = img[:, ::-1]
            boxes = hflip_boxes(boxes, w)
        gt = np.concatenate([boxes, cls[:, None]], axis=1).astype(np.float32)
        info = [h, w, scale, rec['height'], rec['width'], min(len(gt), self.s['max_boxes'])]
        return normalize(img, self.s['mean']), gt, info

    def _assemble(self, images):
        bsz, max_boxes = len(images), self.s['max_boxes']
        hp = max(img.shape[0] for img, _, _ in images)
        wp = max(img.shape[1] for img, _, _ in images)
        data = np.zeros((bsz, hp, wp, 3), np.float32)
        boxes = np.zeros((bsz, max_boxes, 5), np.float32)
        im_info = np.zeros((bsz, 6), np.float32)
        for b, (img, gt, info) in enumerate(images):
            data[b, :img.shape[0], :img.shape[1]] = img
            kept = gt[:max_boxes]
            boxes[b, :len(kept)] = kept
            im_info[b] = info
        return {'data': data, 'im_info': im_info, 'boxes': boxes}
