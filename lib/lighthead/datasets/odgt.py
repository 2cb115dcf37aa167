"""``.odgt`` reader (the original's format, reference section 9).

One JSON object per line: ``ID`` (str), ``fpath`` (image path relative to the image root,
conventionally starting with ``/``), ``height``, ``width`` and ``gtboxes``: a list of
``{"box": [x, y, w, h], "tag": class name, "extra": {"ignore": 0|1}}``. Boxes use the same
convention as COCO here: ``[x, y, x + w - 1, y + h - 1]``, so conversions are lossless.

Optional keys written by ``convert.coco_to_odgt`` and honoured here: ``image_id`` on a line
and ``extra.category_id`` on a box.
"""
import json
import os

from .records import (Dataset, bad_record, check_unique_ids, make_record, report_bad,
                      stable_image_ids, validate_record)
from .registry import DatasetFormat, register_format


def read_odgt(path):
    """The lines of an .odgt file as ``(line_number, dict)``; a line that is not a JSON
    object becomes ``(line_number, BadRecordError)``. Blank lines are skipped."""
    entries = []
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
                if not isinstance(obj, dict):
                    raise ValueError('not a JSON object')
            except ValueError as e:
                obj = bad_record('line %d' % number, 'malformed annotation: %s' % e, path=path)
            entries.append((number, obj))
    return entries


def original_image_id(odgt_id):
    """The original's image id rule: ``int(ID.split('.')[0].split('_')[-1])``."""
    return int(odgt_id.split('.')[0].split('_')[-1])


def odgt_image_ids(lines):
    """Image ids of parsed odgt lines: ``image_id`` where every line has one, else the
    original's rule on ``ID`` where it gives unique ints, else 1-based positions."""
    if lines and all(isinstance(l.get('image_id'), int) for l in lines):
        return stable_image_ids([l['image_id'] for l in lines], int)
    return stable_image_ids([l.get('ID') for l in lines], original_image_id)


def odgt_category_ids(lines, class_names):
    """COCO category id of each class: ``extra.category_id`` when every box carries one
    (classes without boxes get ids after the largest), else the class index."""
    boxes = [b for l in lines for b in l.get('gtboxes') or [] if isinstance(b, dict)]
    carried = [(b.get('extra') or {}).get('category_id') for b in boxes]
    if not boxes or any(not isinstance(c, int) for c in carried):
        return [None] + list(range(1, len(class_names)))
    id_of = {}
    for b, cid in zip(boxes, carried):
        id_of.setdefault(b.get('tag'), cid)
    next_id = max(id_of.values()) + 1
    ids = [None]
    for name in class_names[1:]:
        if name not in id_of:
            id_of[name] = next_id
            next_id += 1
        ids.append(id_of[name])
    return ids


def load_odgt(path, image_root, class_names, on_bad=None, check_files=False):
    """Read an .odgt file into a :class:`Dataset`.

    ``image_root``: folder the ``fpath`` entries are relative to (a leading ``/`` is
    allowed); None for absolute paths. ``class_names``: list with ``'background'`` first;
    a ``tag`` outside it is an unknown class. Record ``id`` is ``ID``. Every record is
    validated (``validate_record``; with ``check_files`` also that its image exists): bad
    records raise BadRecordError or, with ``on_bad``, are reported and skipped. Images are
    not opened.
    """
    if not class_names or len(class_names) < 2:
        raise ValueError('load_odgt(%s): class_names (with background first) are required'
                         % path)
    lines = []
    for number, obj in read_odgt(path):
        if isinstance(obj, BaseException):
            report_bad(obj, on_bad)
        else:
            lines.append((number, obj))
    image_ids = odgt_image_ids([obj for _, obj in lines])
    index_of = {name: i for i, name in enumerate(class_names)}
    records = []
    for (number, obj), image_id in zip(lines, image_ids):
        try:
            rec = _record(obj, path, image_root, image_id, index_of)
            validate_record(rec, class_names, check_file=check_files)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if not hasattr(e, 'record_id'):
                e = bad_record(str(obj.get('ID', 'line %d' % number)),
                               'malformed annotation (line %d): %r' % (number, e), path=path)
            report_bad(e, on_bad)
            continue
        records.append(rec)
    records = check_unique_ids(records, path, on_bad)
    category_ids = odgt_category_ids([obj for _, obj in lines], class_names)
    return Dataset(class_names, records, category_ids, path)


def join_root(image_root, fpath):
    """Absolute image path: ``fpath`` under ``image_root`` whether or not it starts with '/'."""
    if image_root is None:
        return os.path.abspath(fpath)
    return os.path.abspath(os.path.join(image_root, fpath.lstrip('/')))


def _record(obj, path, image_root, image_id, index_of):
    rid = obj['ID']
    if not isinstance(rid, str):
        raise TypeError('ID must be a string')
    boxes, classes, ignore = [], [], []
    for gt in obj['gtboxes']:
        x, y, w, h = [float(v) for v in gt['box']]
        tag = gt['tag']
        if tag not in index_of or index_of[tag] == 0:
            raise bad_record(rid, 'unknown class %r' % (tag,), path=path)
        boxes.append([x, y, x + w - 1, y + h - 1])
        classes.append(index_of[tag])
        ignore.append(bool((gt.get('extra') or {}).get('ignore', 0)))
    return make_record(path, rid, image_id, join_root(image_root, obj['fpath']),
                       obj['height'], obj['width'], boxes, classes, ignore)


class OdgtFormat(DatasetFormat):
    """``dataset_format = 'odgt'``: ``<split>_source`` the .odgt file, ``<split>_root_folder``
    the folder its ``fpath`` entries are relative to; ``class_names`` must be in the config.
    Conversions to and from COCO work on the raw lines (:mod:`lighthead.datasets.convert`)."""
    name = 'odgt'
    description = '.odgt lines (source) and image folder (root_folder)'

    def load(self, spec, class_names=None, on_bad=None, check_files=False):
        return load_odgt(spec.source, spec.root_folder, class_names, on_bad, check_files)

    def to_coco(self, spec, class_names=None):
        from .convert import odgt_to_coco, read_odgt_lines
        return odgt_to_coco(read_odgt_lines(spec.source), class_names)

    def write_from_coco(self, coco, dst, source='<coco>'):
        from .convert import coco_to_odgt, write_odgt
        write_odgt(coco_to_odgt(coco, source), dst)


register_format(OdgtFormat())
