"""Detection records, the dataset object, record validation and the bad-record log.

A record is a dict describing one image and its ground truth:

``id`` (str, unique in its dataset), ``image_id`` (int: the COCO image id, or a stable int),
``fpath`` (absolute image path), ``height``, ``width`` (ints, of the raw image),
``boxes`` float32 ``[N, 4]`` inclusive ``x1, y1, x2, y2`` in raw-image pixels
(``w = x2 - x1 + 1``, SPEC 2.1), ``classes`` int32 ``[N]`` in ``1..C-1`` (0 is background),
``ignore`` bool ``[N]`` (crowd / ignore / difficult regions: never positives, never negatives),
and ``source`` (str: the annotation file the record came from, used in error messages).
"""
import os

import numpy as np

BAD_RECORDS_FILE = 'bad_records.txt'

# A box may overhang the image by up to this many pixels (float COCO boxes that end on the
# image edge, off-by-one exports); the training pipeline clips boxes to the image.
BOX_TOLERANCE = 1.0

_INT_TYPES = (int, np.integer)


class BadRecordError(ValueError):
    """A record that cannot be used: the message names the file and the record.

    Attributes: ``path`` (the file at fault: annotation or image), ``record_id``.
    """

    def __init__(self, message, path=None, record_id=None):
        super().__init__(message)
        self.path = path
        self.record_id = record_id

    def __reduce__(self):
        return type(self), (str(self), self.path, self.record_id)


def bad_record(rec_or_id, problem, path=None):
    """A :class:`BadRecordError` for ``rec_or_id`` (a record dict or an id string).

    The message is ``"<path>: record '<id>' (image <fpath>): <problem>"``; ``path`` defaults to
    the record's annotation ``source`` (or its image when it has none).
    """
    if isinstance(rec_or_id, dict):
        rid = rec_or_id.get('id')
        fpath = rec_or_id.get('fpath')
        if path is None:
            path = rec_or_id.get('source') or fpath
        where = ' (image %s)' % fpath if fpath and fpath != path else ''
    else:
        rid, where = rec_or_id, ''
    message = '%s: record %r%s: %s' % (path or '<unknown file>', rid, where, problem)
    return BadRecordError(message.replace('\n', ' '), path=path, record_id=rid)


class Dataset(object):
    """Records plus their class list.

    ``class_names``: list, index 0 is ``'background'``. ``records``: list of record dicts.
    ``category_ids``: list, ``category_ids[i]`` is the COCO category id of contiguous class
    ``i`` (``category_ids[0]`` is None); for odgt and VOC data it is the id their COCO
    conversion (``lighthead.datasets.convert``) writes. ``source``: the annotation file or
    folder.
    """

    def __init__(self, class_names, records, category_ids, source):
        self.class_names = list(class_names)
        self.records = records
        self.category_ids = list(category_ids)
        self.source = source

    def __len__(self):
        return len(self.records)

    def __repr__(self):
        return 'Dataset(%s: %d records, %d classes)' % (
            self.source, len(self.records), len(self.class_names) - 1)


def make_record(source, rid, image_id, fpath, height, width, boxes, classes, ignore):
    """A record dict with the documented dtypes (``boxes`` ``[N, 4]`` float32, etc.)."""
    return {
        'id': rid,
        'image_id': image_id,
        'fpath': fpath,
        'height': height,
        'width': width,
        'boxes': np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        'classes': np.asarray(classes, dtype=np.int32).reshape(-1),
        'ignore': np.asarray(ignore, dtype=bool).reshape(-1),
        'source': source,
    }


def _check_structure(rec):
    """Missing keys and wrong types: the problem as text, or None."""
    missing = [k for k in ('id', 'image_id', 'fpath', 'height', 'width', 'boxes', 'classes',
                           'ignore') if k not in rec]
    if missing:
        return 'malformed annotation: missing %s' % ', '.join(missing)
    if not isinstance(rec['id'], str) or not rec['id']:
        return 'malformed annotation: id must be a non-empty string'
    if not isinstance(rec['fpath'], str):
        return 'malformed annotation: fpath must be a string'
    for key in ('image_id', 'height', 'width'):
        if not isinstance(rec[key], _INT_TYPES) or isinstance(rec[key], bool):
            return 'malformed annotation: %s must be an int, got %r' % (key, rec[key])
    arrays = {'boxes': 'f', 'classes': 'iu', 'ignore': 'b'}
    for key, kinds in arrays.items():
        value = rec[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds:
            return 'malformed annotation: %s must be a numpy array of kind %r' % (key, kinds)
    n = len(rec['classes'])
    if rec['boxes'].shape != (n, 4) or rec['ignore'].shape != (n,) or rec['classes'].ndim != 1:
        return 'malformed annotation: boxes %s, classes %s, ignore %s do not match' % (
            rec['boxes'].shape, rec['classes'].shape, rec['ignore'].shape)
    return None


def validate_record(rec, class_names, check_file=True):
    """Raise :class:`BadRecordError` (naming the file and the record) if ``rec`` is unusable.

    Checks: keys and types, ``height``/``width`` > 0, boxes finite, with positive size
    (``x2 - x1 + 1 > 0``) and inside the image (up to ``BOX_TOLERANCE`` pixels), classes in
    ``1..len(class_names)-1``, and with ``check_file`` that the image file exists.
    """
    if not isinstance(rec, dict):
        raise bad_record('?', 'malformed annotation: a record must be a dict, got %s'
                         % type(rec).__name__)
    problem = _check_structure(rec)
    if problem:
        raise bad_record(rec, problem)
    h, w = rec['height'], rec['width']
    if h <= 0 or w <= 0:
        raise bad_record(rec, 'non-positive image size %dx%d' % (h, w))
    boxes = rec['boxes']
    if len(boxes):
        if not np.all(np.isfinite(boxes)):
            raise bad_record(rec, 'box with a non-finite coordinate')
        sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) + 1
        if np.any(sizes <= 0):
            i = int(np.argmax(sizes <= 0))
            raise bad_record(rec, 'box %d %s has a non-positive size' % (i, boxes[i].tolist()))
        t = BOX_TOLERANCE
        outside = ((boxes[:, 0] < -t) | (boxes[:, 1] < -t) |
                   (boxes[:, 2] > w - 1 + t) | (boxes[:, 3] > h - 1 + t))
        if np.any(outside):
            i = int(np.argmax(outside))
            raise bad_record(rec, 'box %d %s is outside the %dx%d image' % (
                i, boxes[i].tolist(), w, h))
    classes = rec['classes']
    unknown = (classes < 1) | (classes >= len(class_names))
    if np.any(unknown):
        raise bad_record(rec, 'unknown class index %d (classes are 1..%d: %s)' % (
            int(classes[np.argmax(unknown)]), len(class_names) - 1, list(class_names[1:])))
    if check_file and not os.path.isfile(rec['fpath']):
        raise bad_record(rec, 'missing image file (listed in %s)' % rec.get('source'),
                         path=rec['fpath'])


class BadRecordLog(object):
    """Appends skipped records to ``<log_dir>/bad_records.txt``, one line each, once per run.

    Usable as the ``on_bad`` callback of the readers: ``log(err)`` with a BadRecordError;
    returns True when the error is new (written), False when already logged. One run has one
    log: :meth:`for_dir` gives the process's instance for a folder (``load_dataset`` and the
    training data flow share it).
    """
    _shared = {}

    def __init__(self, log_dir):
        self.path = os.path.join(log_dir, BAD_RECORDS_FILE)
        self._seen = set()

    @classmethod
    def for_dir(cls, log_dir):
        """The shared log of ``<log_dir>/bad_records.txt`` in this process."""
        key = os.path.abspath(os.path.join(log_dir, BAD_RECORDS_FILE))
        log = cls._shared.get(key)
        if log is None:
            log = cls._shared[key] = cls(log_dir)
        elif not os.path.exists(log.path):  # removed since: a new run in the same folder
            log._seen.clear()
        return log

    def __call__(self, err):
        key = (err.path, err.record_id, str(err))
        if key in self._seen:
            return False
        self._seen.add(key)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, 'a') as f:
            f.write(str(err) + '\n')
        return True

    @property
    def count(self):
        """Distinct bad records logged by this instance."""
        return len(self._seen)


def report_bad(err, on_bad):
    """Raise ``err`` when ``on_bad`` is None, else hand it to ``on_bad`` (the record is skipped)."""
    if on_bad is None:
        raise err
    on_bad(err)


def check_unique_ids(records, source, on_bad=None):
    """Drop (or raise for) records whose ``id`` repeats an earlier one; returns the kept list."""
    seen = set()
    kept = []
    for rec in records:
        if rec['id'] in seen:
            report_bad(bad_record(rec['id'], 'duplicate record id', path=source), on_bad)
            continue
        seen.add(rec['id'])
        kept.append(rec)
    return kept


def stable_image_ids(names, parse):
    """Integer ids for ``names``: ``parse(name)`` for each if that works and is unique,
    else 1-based positions (so ids never collide)."""
    try:
        ids = [int(parse(n)) for n in names]
    except (ValueError, TypeError, IndexError, AttributeError):
        ids = None
    if ids is None or len(set(ids)) != len(ids):
        ids = list(range(1, len(names) + 1))
    return ids
