"""Conversions between COCO JSON, .odgt and Pascal VOC (SPEC 5.7).

COCO <-> odgt works on the raw values (``bbox`` and ``box`` are both ``[x, y, w, h]``), so
numbers pass through unchanged. What each direction carries:

- COCO -> odgt: ``ID`` = ``file_name``, ``fpath`` = ``'/' + file_name``, ``height``,
  ``width``, ``image_id`` = the COCO image id, and per box ``tag`` = category name,
  ``extra.ignore`` = ``iscrowd``, ``extra.category_id``.
- odgt -> COCO: image ``id`` by :func:`odgt.odgt_image_ids`, ``file_name`` = ``fpath``
  without its leading ``/`` (plus ``odgt_id`` when ``ID`` differs from it), annotation ids
  1..N in file order, ``area = w * h``, categories by :func:`odgt.odgt_category_ids`.

So COCO -> odgt -> COCO keeps images, boxes, category ids and names, and ``iscrowd``;
not carried: annotation ids, ``segmentation``, ``area`` (recomputed), ``supercategory``
and categories that no box uses (unless named with ``class_names``).
"""
import json
import os

from .coco import coco_classes
from .odgt import odgt_category_ids, odgt_image_ids, read_odgt
from .records import BadRecordError
from .registry import DataSpec, DatasetFormat, format_names, get_format


def coco_to_odgt(coco, json_path='<coco>'):
    """COCO dict -> list of odgt line dicts (one per image, in image order)."""
    _, _, name_of = coco_classes(coco, json_path)
    anns_of = {}
    for ann in coco['annotations']:
        anns_of.setdefault(ann['image_id'], []).append(ann)
    lines = []
    for img in coco['images']:
        file_name = img['file_name']
        gtboxes = [{
            'box': list(ann['bbox']),
            'tag': name_of[ann['category_id']],
            'extra': {'ignore': int(bool(ann.get('iscrowd', 0))),
                      'category_id': ann['category_id']},
        } for ann in anns_of.get(img['id'], [])]
        lines.append({
            'ID': img.get('odgt_id', file_name),
            'fpath': file_name if file_name.startswith('/') else '/' + file_name,
            'height': img['height'],
            'width': img['width'],
            'image_id': img['id'],
            'gtboxes': gtboxes,
        })
    return lines


def odgt_to_coco(lines, class_names=None):
    """odgt line dicts -> COCO dict. ``class_names`` (background first) fixes the class
    order; default: the tags, ordered by carried category id, else by name."""
    if class_names is None:
        tags = {}
        for number, line in enumerate(lines, 1):
            try:
                for gt in line['gtboxes']:
                    tags.setdefault(gt['tag'], (gt.get('extra') or {}).get('category_id'))
            except (KeyError, TypeError, AttributeError) as e:
                raise _odgt_line_error(line, number, e)
        order = sorted(tags, key=lambda t: (tags[t] if isinstance(tags[t], int) else 0, t))
        class_names = ['background'] + order
    category_ids = odgt_category_ids(lines, class_names)
    cid_of = dict(zip(class_names[1:], category_ids[1:]))
    images, annotations = [], []
    for number, (line, image_id) in enumerate(zip(lines, odgt_image_ids(lines)), 1):
        try:
            file_name = line['fpath'].lstrip('/')
            image = {'id': image_id, 'file_name': file_name, 'height': line['height'],
                     'width': line['width']}
            if line['ID'] != file_name:
                image['odgt_id'] = line['ID']
            boxes = []
            for gt in line['gtboxes']:
                x, y, w, h = gt['box']
                tag = gt['tag']
                boxes.append((x, y, w, h, w * h, tag, (gt.get('extra') or {}).get('ignore', 0)))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise _odgt_line_error(line, number, e)
        images.append(image)
        for x, y, w, h, area, tag, ignore in boxes:
            if tag not in cid_of:
                raise ValueError('image %r: tag %r is not in the classes %s'
                                 % (line['ID'], tag, class_names[1:]))
            annotations.append({
                'id': len(annotations) + 1, 'image_id': image_id, 'bbox': [x, y, w, h],
                'area': area, 'category_id': cid_of[tag], 'iscrowd': int(bool(ignore)),
            })
    categories = [{'id': cid, 'name': name} for name, cid in
                  sorted(cid_of.items(), key=lambda item: item[1])]
    return {'images': images, 'annotations': annotations, 'categories': categories}


def _odgt_line_error(line, number, error):
    """ValueError naming the odgt entry ``number`` (1-based, blank lines not counted) and its
    ``ID``: a line that cannot be converted."""
    rid = line.get('ID') if isinstance(line, dict) else None
    return ValueError('image %r (entry %d): malformed annotation: %r' % (rid, number, error))


def _number(v):
    v = float(v)
    return int(v) if v.is_integer() else v


def dataset_to_coco(dataset, image_root):
    """A :class:`Dataset` as a COCO dict (ground truth for pycocotools).

    ``file_name`` is each image path relative to ``image_root``; boxes ``[x1, y1, x2, y2]``
    become ``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]``; ignore regions become ``iscrowd = 1``;
    category ids are ``dataset.category_ids``.
    """
    images, annotations = [], []
    for rec in dataset.records:
        images.append({'id': rec['image_id'], 'height': rec['height'], 'width': rec['width'],
                       'file_name': os.path.relpath(rec['fpath'], image_root)})
        for box, cls, ign in zip(rec['boxes'].tolist(), rec['classes'].tolist(),
                                 rec['ignore'].tolist()):
            x1, y1, x2, y2 = [_number(v) for v in box]
            w, h = _number(x2 - x1 + 1), _number(y2 - y1 + 1)
            annotations.append({
                'id': len(annotations) + 1, 'image_id': rec['image_id'],
                'bbox': [x1, y1, w, h], 'area': _number(w * h),
                'category_id': dataset.category_ids[cls], 'iscrowd': int(ign),
            })
    categories = [{'id': cid, 'name': name}
                  for name, cid in zip(dataset.class_names[1:], dataset.category_ids[1:])]
    return {'images': images, 'annotations': annotations, 'categories': categories}


def voc_to_coco(voc_root, split, class_names=None):
    """A VOC split as a COCO dict; ``file_name`` is relative to ``<voc_root>/JPEGImages``.
    ``difficult`` objects become ``iscrowd = 1`` (COCOeval then ignores detections on them)."""
    return get_format('voc').to_coco(DataSpec(voc_root, None, split), class_names)


def write_json(obj, path):
    """Write ``obj`` as JSON to ``path`` (parent folders created)."""
    _makedirs_for(path)
    with open(path, 'w') as f:
        json.dump(obj, f)


def write_odgt(lines, path):
    """Write odgt line dicts to ``path``, one JSON object per line."""
    _makedirs_for(path)
    with open(path, 'w') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')


def read_odgt_lines(path):
    """The line dicts of an .odgt file; a malformed line raises BadRecordError."""
    lines = []
    for _, obj in read_odgt(path):
        if isinstance(obj, BaseException):
            raise obj
        lines.append(obj)
    return lines


def _makedirs_for(path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)


def parse_conversion(kind):
    """``'<a>2<b>'`` -> ``(format a, format b)``: registered formats, one of them ``coco``."""
    src, sep, dst = kind.partition('2') if isinstance(kind, str) else ('', '', '')
    if not sep or 'coco' not in (src, dst) or src == dst or \
            src not in format_names() or dst not in format_names():
        raise ValueError('unknown conversion %r: conversions are <format>2coco and '
                         'coco2<format> between the registered formats %s'
                         % (kind, ', '.join(format_names())))
    return get_format(src), get_format(dst)


def convert_file(kind, src, dst, split=None, class_names=None, root_folder=None):
    """File-level conversion ``'<a>2<b>'`` through the format registry (one side is
    ``coco``): the source format's ``to_coco``, then the target's ``write_from_coco``.

    Built in: ``coco2odgt`` (src json), ``odgt2coco`` (src odgt, optional ``class_names``
    without background), ``voc2coco`` (src VOC root, ``split``). Returns the number of images
    written.

    The source's records are checked by its format's loader, as training and evaluation load
    them (:func:`validate_source`; image files are not needed): a bad record (e.g. a NaN or
    empty box, an unknown class) raises BadRecordError naming the file and the record, and
    nothing is written."""
    src_fmt, dst_fmt = parse_conversion(kind)
    names = ['background'] + list(class_names) if class_names else None
    spec = DataSpec(src, root_folder, split)
    # The default to_coco loads (and so validates) the records itself.
    loads = type(src_fmt).to_coco is DatasetFormat.to_coco
    checked = loads
    if not checked and (names or src_fmt.classes_from_data):
        validate_source(src_fmt, spec, names)
        checked = True
    coco = _named(src, src_fmt.to_coco, spec, names)
    if not checked:
        validate_source(src_fmt, spec, names, coco)
    _named(src, dst_fmt.write_from_coco, coco, dst, source=src)
    return len(coco['images'])


def validate_source(fmt, spec, class_names=None, coco=None):
    """Check every record of ``spec`` with ``fmt.load`` (the loaders' validation, without image
    files); BadRecordError naming the file and the first bad record. A format that cannot find
    classes in its data, given no ``class_names``, is checked against the categories of its
    COCO conversion ``coco``."""
    if not class_names and not fmt.classes_from_data:
        cats = sorted(coco['categories'], key=lambda c: c['id'])
        class_names = ['background'] + [c['name'] for c in cats]
    # A root folder is only joined to image paths, which are not opened here.
    root = spec.root_folder if spec.root_folder is not None else ''
    return fmt.load(DataSpec(spec.source, root, spec.split), class_names)


def _named(src, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; a malformed-input error that does not name its file
    (KeyError, TypeError, ...) becomes a ValueError naming ``src``."""
    try:
        return fn(*args, **kwargs)
    except BadRecordError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError('%s: %s' % (src, e if isinstance(e, ValueError) else
                                     'malformed annotations: %r' % e))
