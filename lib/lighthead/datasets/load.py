"""Dataset selection from the config: ``load_dataset(cfg, 'train' | 'eval')``."""
from .coco import load_coco
from .odgt import load_odgt
from .records import BadRecordLog
from .voc import load_voc

SPLITS = {
    'train': ('train_source', 'train_root_folder', 'train_split'),
    'eval': ('eval_source', 'eval_root_folder', 'eval_split'),
}


def load_dataset(cfg, split='train'):
    """The :class:`Dataset` of ``split`` described by the config.

    ``cfg.dataset_format``: ``'coco'`` (``<split>_source`` = instances JSON,
    ``<split>_root_folder`` = image folder), ``'odgt'`` (same keys), ``'voc'``
    (``<split>_source`` = VOC root, ``<split>_split`` = ImageSets name). ``cfg.class_names``
    (background first) fixes the classes; when it is only ``['background']`` the classes come
    from the data (COCO, VOC). With ``cfg.skip_bad_records`` bad records are appended to
    ``<cfg.log_dir>/bad_records.txt`` and skipped, else the first one raises BadRecordError.
    """
    if split not in SPLITS:
        raise ValueError('split must be one of %s, got %r' % (sorted(SPLITS), split))
    source_key, root_key, split_key = SPLITS[split]
    source = cfg[source_key]
    if not source:
        raise ValueError('config %s is not set: nothing to load for %r' % (source_key, split))
    class_names = list(cfg.class_names) if len(cfg.class_names) > 1 else None
    on_bad = BadRecordLog(cfg.log_dir) if cfg.skip_bad_records else None
    fmt = cfg.dataset_format
    if fmt == 'coco':
        return load_coco(source, cfg[root_key], class_names, on_bad=on_bad)
    if fmt == 'odgt':
        return load_odgt(source, cfg[root_key], class_names, on_bad=on_bad)
    if fmt == 'voc':
        return load_voc(source, cfg[split_key], class_names, on_bad=on_bad)
    raise ValueError("dataset_format must be 'coco', 'odgt' or 'voc', got %r" % (fmt,))
