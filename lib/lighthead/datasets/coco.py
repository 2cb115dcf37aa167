"""COCO instances JSON reader.

bbox ``[x, y, w, h]`` becomes the inclusive box ``[x, y, x + w - 1, y + h - 1]`` (SPEC 2.1);
``iscrowd`` (or a non-zero ``ignore``) marks an ignore region.
"""
import json
import os

from .records import (Dataset, bad_record, check_unique_ids, make_record, report_bad,
                      validate_record)
from .registry import DatasetFormat, register_format


def read_json(path):
    """Parsed JSON of ``path``; a syntax error becomes a BadRecordError naming the file."""
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as e:
            raise bad_record('<file>', 'malformed JSON: %s' % e, path=path)


def coco_classes(coco, json_path, class_names=None):
    """``(class_names, category_ids, name_of_category_id)`` of a COCO dict.

    Without ``class_names`` the classes are the categories sorted by id; with it, each name
    (after ``'background'``) must be a category name of the file.
    """
    try:
        cats = sorted(coco['categories'], key=lambda c: c['id'])
        name_of = {c['id']: c['name'] for c in cats}
    except (KeyError, TypeError) as e:
        raise bad_record('<categories>', 'malformed categories: %r' % e, path=json_path)
    if class_names is None:
        class_names = ['background'] + [c['name'] for c in cats]
    id_of = {c['name']: c['id'] for c in cats}
    absent = [n for n in class_names[1:] if n not in id_of]
    if absent:
        raise ValueError('%s: classes %s are not categories of this file (it has %s)'
                         % (json_path, absent, sorted(id_of)))
    category_ids = [None] + [id_of[n] for n in class_names[1:]]
    return list(class_names), category_ids, name_of


def load_coco(json_path, image_root, class_names=None, on_bad=None, check_files=False):
    """Read a COCO instances JSON into a :class:`Dataset` (one record per image).

    ``image_root``: folder that ``file_name`` is relative to. ``class_names``: list with
    ``'background'`` first, or None for all categories sorted by id. Record ``id`` is the
    image ``file_name``. Every record is validated (``validate_record``; with
    ``check_files`` also that its image exists): bad records raise BadRecordError, or with
    ``on_bad`` (a callable taking the error) are reported and skipped. Images are not opened.
    """
    coco = read_json(json_path)
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco, dict) or not isinstance(coco.get(key), list):
            raise bad_record('<file>', 'malformed COCO file: no %r list' % key, path=json_path)
    class_names, category_ids, name_of = coco_classes(coco, json_path, class_names)
    index_of = {cid: i for i, cid in enumerate(category_ids) if cid is not None}

    anns_of = {}
    for ann in coco['annotations']:
        anns_of.setdefault(ann.get('image_id') if isinstance(ann, dict) else None, []).append(ann)

    records = []
    for img in coco['images']:
        try:
            rec = _record(img, anns_of.get(img.get('id'), []), json_path, image_root,
                          index_of, name_of)
            validate_record(rec, class_names, check_file=check_files)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if not hasattr(e, 'record_id'):
                rid = img.get('file_name', img.get('id')) if isinstance(img, dict) else img
                e = bad_record(str(rid), 'malformed annotation: %r' % e, path=json_path)
            report_bad(e, on_bad)
            continue
        records.append(rec)
    records = check_unique_ids(records, json_path, on_bad)
    return Dataset(class_names, records, category_ids, json_path)


def _record(img, anns, json_path, image_root, index_of, name_of):
    boxes, classes, ignore = [], [], []
    for ann in anns:
        x, y, w, h = [float(v) for v in ann['bbox']]
        cid = ann['category_id']
        if cid not in index_of:
            label = name_of.get(cid, 'category id %r' % (cid,))
            raise bad_record(img['file_name'], 'unknown class %r (annotation %r)'
                             % (label, ann.get('id')), path=json_path)
        boxes.append([x, y, x + w - 1, y + h - 1])
        classes.append(index_of[cid])
        ignore.append(bool(ann.get('iscrowd', 0)) or bool(ann.get('ignore', 0)))
    fpath = os.path.abspath(os.path.join(image_root, img['file_name']))
    return make_record(json_path, img['file_name'], img['id'], fpath, img['height'],
                       img['width'], boxes, classes, ignore)


class CocoFormat(DatasetFormat):
    """``dataset_format = 'coco'``: ``<split>_source`` the instances JSON,
    ``<split>_root_folder`` the image folder. The COCO ground truth is the file itself
    (restricted to the images loaded, without segmentations)."""
    name = 'coco'
    description = "COCO instances JSON (source) and image folder (root_folder)"
    classes_from_data = True

    def load(self, spec, class_names=None, on_bad=None, check_files=False):
        return load_coco(spec.source, spec.root_folder, class_names, on_bad, check_files)

    def coco_ground_truth(self, dataset, spec):
        coco = read_json(spec.source)
        keep = {rec['image_id'] for rec in dataset.records}
        images = [img for img in coco['images'] if img.get('id') in keep]
        annotations = [{k: v for k, v in ann.items() if k != 'segmentation'}
                       for ann in coco['annotations'] if ann.get('image_id') in keep]
        return {'images': images, 'annotations': annotations,
                'categories': coco['categories']}

    def to_coco(self, spec, class_names=None):
        return read_json(spec.source)

    def write_from_coco(self, coco, dst, source='<coco>'):
        from .convert import write_json
        write_json(coco, dst)


register_format(CocoFormat())
