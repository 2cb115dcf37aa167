"""Dataset selection from the config: ``load_dataset(cfg, 'train' | 'eval')``.

The format is looked up in :mod:`lighthead.datasets.registry` by ``cfg.dataset_format``; its
loader validates every record (this is the only validation pass: the training data flow
trusts the records it is given and only reports images that cannot be read).
"""
import logging
import os
import sys

from .records import BadRecordLog
from .registry import DataSpec, get_format

logger = logging.getLogger(__name__)

SPLITS = {
    'train': ('train_source', 'train_root_folder', 'train_split'),
    'eval': ('eval_source', 'eval_root_folder', 'eval_split'),
}


def data_spec(cfg, split='train'):
    """The :class:`DataSpec` (source, root_folder, split) of ``split`` in the config."""
    if split not in SPLITS:
        raise ValueError('split must be one of %s, got %r' % (sorted(SPLITS), split))
    source_key, root_key, split_key = SPLITS[split]
    if not cfg[source_key]:
        raise ValueError('config %s is not set: nothing to load for %r' % (source_key, split))
    return DataSpec(cfg[source_key], cfg[root_key], cfg[split_key])


def bad_record_log(cfg):
    """The run's :class:`BadRecordLog` (``<cfg.log_dir>/bad_records.txt``) when
    ``cfg.skip_bad_records``, else None (bad records raise)."""
    return BadRecordLog.for_dir(cfg.log_dir) if cfg.skip_bad_records else None


def load_dataset(cfg, split='train'):
    """The validated :class:`Dataset` of ``split`` described by the config.

    ``cfg.dataset_format`` names a registered format (built in: ``'coco'``: ``<split>_source``
    = instances JSON, ``<split>_root_folder`` = image folder; ``'odgt'``: same keys;
    ``'voc'``: ``<split>_source`` = VOC root, ``<split>_split`` = ImageSets name). Records are
    validated once, here: boxes, classes, and that each image file exists. With
    ``cfg.skip_bad_records`` bad records are appended to ``<cfg.log_dir>/bad_records.txt`` and
    skipped, with one line counting them on the console and in ``train.log``
    (:func:`report_skipped`), else the first one raises BadRecordError naming the file and
    the record.

    Classes: ``cfg.class_names`` (background first) fixes them. When it is only
    ``['background']`` and the format finds classes in the data (COCO, VOC), the eval split
    resolves them into the config (``cfg.class_names``, ``cfg.num_classes``), once, before
    any network is built; training refuses (its network is sized by the config), naming the
    classes the data has.
    """
    spec = data_spec(cfg, split)
    fmt = get_format(cfg.dataset_format)
    class_names = list(cfg.class_names) if len(cfg.class_names) > 1 else None
    if class_names is None and not fmt.classes_from_data:
        raise ValueError('dataset_format %r needs cfg.class_names (background first)'
                         % fmt.name)
    on_bad = bad_record_log(cfg)
    before = on_bad.count if on_bad else 0
    dataset = fmt.load(spec, class_names, on_bad=on_bad, check_files=True)
    if on_bad and on_bad.count > before:
        report_skipped(cfg, 'skipped %d bad records of %s, listed in %s'
                       % (on_bad.count - before, spec.source, on_bad.path))
    if class_names is None:
        resolve_class_names(cfg, dataset, split)
    return dataset


def report_skipped(cfg, message):
    """Show ``message`` (one line) on the console as ``lighthead: <message>`` (stderr) and, when
    training has set up this run's ``<cfg.log_dir>/train.log`` (the ``lighthead.train``
    logger), write it there too.

    Not left to this module's logger alone: a WARNING of an unconfigured logger reaches the
    console only through Python's last-resort handler (gone as soon as anything configures the
    root logger), and the training log's logger does not receive it.
    """
    print('lighthead: %s' % message, file=sys.stderr)
    sys.stderr.flush()
    train_logger = logging.getLogger('lighthead.train')
    train_log = os.path.abspath(os.path.join(cfg.log_dir, 'train.log'))
    if any(getattr(h, 'baseFilename', None) and os.path.abspath(h.baseFilename) == train_log
           for h in train_logger.handlers):
        train_logger.warning('data: %s', message)


def resolve_class_names(cfg, dataset, split):
    """Put the classes found in the data into a config that has none (see load_dataset)."""
    if split == 'train':
        raise ValueError('config class_names is not set: the network is sized by it, so '
                         'training needs it; the data of %s has class_names=%r'
                         % (dataset.source, dataset.class_names))
    from lighthead.config import update_config
    update_config(cfg, class_names=list(dataset.class_names))
