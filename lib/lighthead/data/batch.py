"""One training batch as a deterministic function of its task index.

Task ``k`` is tower ``k % T`` of step ``k // T`` (``T`` towers). Step ``s`` lies in data
epoch ``e = s // steps_per_epoch`` at position ``i = s % steps_per_epoch``; the epoch's order
is a permutation seeded by ``(seed, e)``, and the batch takes records
``perm[(i * T + tower) * B : + B]``. Its augmentation is seeded by ``(seed, step, tower)``:
one ``RandomState([seed, 1, step, tower])`` gives, in this fixed order, the batch's short side,
one horizontal-flip coin per image, the batch's scale-jitter factor; then, image by image
(after its file was read): crop positions, colour factors, quarter turns, a vertical-flip
coin. An augmentation that is off draws nothing, so with ``cfg.augment`` all off (the default)
the batches are exactly those of before it existed. So any step can be rebuilt anywhere, which
makes resuming exact and lets worker processes share the work without coordination.

One image goes through: read -> random crop (original pixels) -> colour jitter -> resize
(short side ``short_size * scale factor``, long side at most ``image_max_size``, the factor
computed on the whole image so a crop does not zoom) -> quarter turns -> vertical flip ->
horizontal flip -> RGB minus means. Boxes are clipped to the final image.
"""
import numpy as np

from ..datasets.records import bad_record
from .augment import adjust_colour, colour_factors, random_crop, rot90, vflip
from .transforms import (ImageReadError, hflip_boxes, make_im_info, normalize, read_image,
                         resize_by, short_max_scale)

AUGMENT_KEYS = ('vflip', 'rot90', 'brightness', 'contrast', 'saturation', 'scale_range',
                'crop_fraction')


def augment_settings(augment):
    """Checked plain-dict copy of ``cfg.augment`` (keys :data:`AUGMENT_KEYS`):

    - ``vflip``, ``rot90`` (bool): a random vertical flip; ``k`` uniform in ``0..3`` quarter
      turns counter-clockwise;
    - ``brightness``, ``contrast``, ``saturation`` (float in ``[0, 1)``, 0: off): factors
      uniform in ``[1 - x, 1 + x]`` (:func:`lighthead.data.augment.adjust_colour`);
    - ``scale_range`` (None or ``[lo, hi]``, ``0 < lo <= hi``): the batch's short side times
      a factor uniform in ``[lo, hi]``;
    - ``crop_fraction`` (None or float in ``(0, 1]``): a crop of that fraction of each side at
      a random position (:func:`lighthead.data.augment.random_crop`).
    """
    unknown = sorted(set(augment) - set(AUGMENT_KEYS))
    if unknown:
        raise ValueError('unknown augment keys %s; known: %s' % (unknown, list(AUGMENT_KEYS)))
    out = {'vflip': bool(augment.get('vflip')), 'rot90': bool(augment.get('rot90'))}
    for key in ('brightness', 'contrast', 'saturation'):
        out[key] = float(augment.get(key) or 0.0)
        if not 0.0 <= out[key] < 1.0:
            raise ValueError('augment.%s must be in [0, 1), got %r' % (key, out[key]))
    scale_range = augment.get('scale_range')
    out['scale_range'] = None if scale_range is None else [float(v) for v in scale_range]
    if scale_range is not None and not (len(scale_range) == 2
                                        and 0 < out['scale_range'][0] <= out['scale_range'][1]):
        raise ValueError('augment.scale_range must be [lo, hi] with 0 < lo <= hi, got %r'
                         % (scale_range,))
    fraction = augment.get('crop_fraction')
    out['crop_fraction'] = None if fraction is None else float(fraction)
    if fraction is not None and not 0.0 < out['crop_fraction'] <= 1.0:
        raise ValueError('augment.crop_fraction must be in (0, 1], got %r' % (fraction,))
    return out


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
        'augment': augment_settings(cfg.get('augment') or {}),
    }


class BatchMaker(object):
    """Builds batches from ``records`` (validated, each with a non-ignore box).

    ``make(k)`` returns ``(batch, bad, truncated)``: ``batch`` is a dict with
    ``data`` float32 ``[B, Hp, Wp, 3]`` (RGB minus means, zero padding bottom/right),
    ``im_info`` float32 ``[B, 6]`` = ``(resized_h, resized_w, scale, orig_h, orig_w, num_gt)``
    (``resized_h, resized_w``: the final image, after any crop and quarter turn; ``scale``:
    resized length over original length along the image's own axes, i.e. before a turn;
    ``orig_h, orig_w``: the file's size, uncropped)
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
        if s['augment']['scale_range']:
            short *= rng.uniform(*s['augment']['scale_range'])

        images, bad, truncated = [], [], 0
        replacement = base + bsz
        for j in range(bsz):
            rec = self.records[perm[base + j]]
            while True:
                try:
                    image = self._prepare(rec, short, flips[j], rng)
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

    def _prepare(self, rec, short, flip, rng):
        """One record -> (normalised image, gt rows [n, 5], im_info row); ``short`` is the
        short side before the max-size cap, ``flip`` the horizontal-flip coin, ``rng`` the
        batch's RandomState for the other augmentations (see the module docstring)."""
        aug = self.s['augment']
        raw = read_image(rec['fpath'])
        if raw.shape[:2] != (rec['height'], rec['width']):
            raise ImageReadError('image %s is %dx%d (w x h) but its annotation says %dx%d' % (
                rec['fpath'], raw.shape[1], raw.shape[0], rec['width'], rec['height']))
        order = np.argsort(rec['ignore'], kind='stable')
        cls = rec['classes'][order].astype(np.float32)
        cls[rec['ignore'][order]] = -1
        gt = np.concatenate([rec['boxes'][order], cls[:, None]], axis=1)
        img = raw
        if aug['crop_fraction']:
            img, gt = random_crop(img, gt, aug['crop_fraction'], rng)
            gt = gt[np.argsort(gt[:, 4] < 0, kind='stable')]  # non-ignore first again
        factors = colour_factors(rng, aug['brightness'], aug['contrast'], aug['saturation'])
        if factors != (1.0, 1.0, 1.0):
            img = adjust_colour(img, *factors)
        img, scale = resize_by(img, short_max_scale(raw.shape[0], raw.shape[1], short,
                                                    self.s['max_size']))
        h, w = img.shape[:2]
        gt[:, :4] *= np.float32(scale)
        np.clip(gt[:, 0:4:2], 0, w - 1, out=gt[:, 0:4:2])
        np.clip(gt[:, 1:4:2], 0, h - 1, out=gt[:, 1:4:2])
        if aug['rot90']:
            img, gt = rot90(img, gt, rng.randint(4))
        if aug['vflip'] and rng.randint(2):
            img, gt = vflip(img, gt)
        if flip:
            img = img[:, ::-1]
            gt = hflip_boxes(gt, img.shape[1])
        gt = gt.astype(np.float32)
        info = make_im_info(img.shape[:2], scale, (rec['height'], rec['width']),
                            min(len(gt), self.s['max_boxes']))[0]
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
