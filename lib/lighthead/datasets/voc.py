"""Pascal VOC XML readers.

VOC corners are 1-based inclusive pixels; records are 0-based inclusive, so every coordinate
is reduced by one (as py-faster-rcnn). ``difficult`` objects become ignore regions.
"""
import os
import xml.etree.ElementTree as ET
import zlib

from .records import (Dataset, bad_record, check_unique_ids, make_record, report_bad,
                      stable_image_ids, validate_record)
from .registry import DatasetFormat, register_format


def parse_voc_xml(xml_path):
    """``{'filename', 'width', 'height', 'objects': [(name, [x1, y1, x2, y2], difficult)]}``
    with 0-based inclusive float corners; malformed XML raises BadRecordError."""
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    try:
        root = ET.parse(xml_path).getroot()
        size = root.find('size')
        objects = []
        for obj in root.findall('object'):
            bb = obj.find('bndbox')
            corners = [float(bb.find(k).text) - 1 for k in ('xmin', 'ymin', 'xmax', 'ymax')]
            difficult = obj.find('difficult')
            objects.append((obj.find('name').text.strip(), corners,
                            difficult is not None and int(difficult.text or 0) == 1))
        filename = root.find('filename')
        return {
            'filename': filename.text.strip() if filename is not None and filename.text else None,
            'width': int(float(size.find('width').text)),
            'height': int(float(size.find('height').text)),
            'objects': objects,
        }
    except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
        raise bad_record(stem, 'malformed annotation: %r' % e, path=xml_path)


def _class_names_of(parsed):
    return ['background'] + sorted({o[0] for p in parsed for o in p['objects']})


def _record(parsed, xml_path, rid, image_id, fpath, index_of):
    boxes, classes, ignore = [], [], []
    for name, corners, difficult in parsed['objects']:
        if name not in index_of or index_of[name] == 0:
            raise bad_record(rid, 'unknown class %r' % name, path=xml_path)
        boxes.append(corners)
        classes.append(index_of[name])
        ignore.append(difficult)
    return make_record(xml_path, rid, image_id, os.path.abspath(fpath), parsed['height'],
                       parsed['width'], boxes, classes, ignore)


def voc_image_id(stem):
    """Stable int id of an image name: its digits when it is digits and underscores
    (``'2008_000123'`` -> 2008000123), else a CRC32 of the name."""
    digits = stem.replace('_', '')
    if digits.isdigit():
        return int(digits)
    return zlib.crc32(stem.encode('utf-8')) & 0x7fffffff


def load_voc_xml(xml_path, image_path=None, class_names=None, image_id=None, on_bad=None,
                 check_files=False):
    """One VOC XML file (and its image) as a one-record :class:`Dataset` (no record if bad
    and ``on_bad`` is given).

    ``image_path``: default the XML's ``<filename>`` in the XML's folder. ``class_names``:
    default ``'background'`` plus the sorted object names. ``image_id``: default
    :func:`voc_image_id` of the XML name. Record ``id`` is the XML file name without extension.
    The record is validated (``validate_record``, with ``check_files`` that the image exists).
    """
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    parsed = parse_voc_xml(xml_path)
    if image_path is None:
        if not parsed['filename']:
            raise bad_record(stem, 'no <filename>: pass image_path', path=xml_path)
        image_path = os.path.join(os.path.dirname(os.path.abspath(xml_path)), parsed['filename'])
    if class_names is None:
        class_names = _class_names_of([parsed])
    index_of = {name: i for i, name in enumerate(class_names)}
    records = []
    try:
        rec = _record(parsed, xml_path, stem, voc_image_id(stem) if image_id is None else image_id,
                      image_path, index_of)
        validate_record(rec, class_names, check_file=check_files)
        records.append(rec)
    except ValueError as e:
        report_bad(e, on_bad)
    return Dataset(class_names, records, [None] + list(range(1, len(class_names))), xml_path)


def load_voc(voc_root, split, class_names=None, on_bad=None, check_files=False):
    """A VOC split: ``<voc_root>/ImageSets/Main/<split>.txt`` names the images,
    ``Annotations/<name>.xml`` their boxes, ``JPEGImages/<name>.jpg`` the pixels.

    ``class_names``: default ``'background'`` plus the sorted object names of the split
    (give them explicitly so train and test agree). Record ``id`` is the image name;
    ``image_id`` its digits (``'2008_000123'`` -> 2008000123) when all names are digits and
    unique, else 1-based positions in the split file. ``category_ids[i] = i``. Every record
    is validated (``validate_record``; with ``check_files`` also that its image exists): bad
    ones raise BadRecordError or, with ``on_bad``, are reported and skipped.
    """
    split_file = os.path.join(voc_root, 'ImageSets', 'Main', split + '.txt')
    with open(split_file) as f:
        stems = [line.split()[0] for line in f if line.strip()]
    image_ids = stable_image_ids(stems, lambda s: int(s.replace('_', '')))
    parsed = []
    for stem, image_id in zip(stems, image_ids):
        xml_path = os.path.join(voc_root, 'Annotations', stem + '.xml')
        try:
            parsed.append((stem, image_id, xml_path, parse_voc_xml(xml_path)))
        except (IOError, OSError) as e:
            report_bad(bad_record(stem, 'cannot read annotation: %s' % e, path=xml_path), on_bad)
        except ValueError as e:
            report_bad(e, on_bad)
    if class_names is None:
        class_names = _class_names_of([p for _, _, _, p in parsed])
    index_of = {name: i for i, name in enumerate(class_names)}
    records = []
    for stem, image_id, xml_path, p in parsed:
        fpath = os.path.join(voc_root, 'JPEGImages', stem + '.jpg')
        try:
            rec = _record(p, xml_path, stem, image_id, fpath, index_of)
            validate_record(rec, class_names, check_file=check_files)
        except ValueError as e:
            report_bad(e, on_bad)
            continue
        records.append(rec)
    records = check_unique_ids(records, split_file, on_bad)
    return Dataset(class_names, records, [None] + list(range(1, len(class_names))), split_file)


class VocFormat(DatasetFormat):
    """``dataset_format = 'voc'``: ``<split>_source`` the VOC root, ``<split>_split`` the
    ImageSets/Main name. Evaluation adds the VOC07 11-point and the area mAP
    (:func:`lighthead.eval.voc_eval.voc_evaluate`)."""
    name = 'voc'
    description = 'Pascal VOC root (source) and ImageSets/Main split name (split)'
    classes_from_data = True

    def load(self, spec, class_names=None, on_bad=None, check_files=False):
        return load_voc(spec.source, spec.split, class_names, on_bad, check_files)

    def image_root(self, dataset, spec):
        return os.path.join(spec.source, 'JPEGImages')

    def extra_metrics(self, dataset, detections):
        from ..eval.voc_eval import voc_evaluate, voc_summary
        voc = voc_evaluate(dataset.records, detections, dataset.class_names)
        return [('voc', voc, voc_summary(voc))]


register_format(VocFormat())
