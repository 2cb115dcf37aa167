"""Dataset formats: one registered :class:`DatasetFormat` object per ``cfg.dataset_format``.

A format turns the config's data keys into a :class:`~lighthead.datasets.records.Dataset`
(:meth:`DatasetFormat.load`, which validates every record), gives the ground truth for COCO
evaluation (:meth:`DatasetFormat.coco_ground_truth`, a pycocotools-ready dict) and any metrics
of its own (:meth:`DatasetFormat.extra_metrics`, e.g. VOC07 mAP). ``load_dataset``
(:mod:`lighthead.datasets.load`), the evaluation CLI (:mod:`lighthead.eval.cli`) and the
conversions (:mod:`lighthead.datasets.convert`) only look formats up here.

Adding a format: one module that subclasses :class:`DatasetFormat` and calls
``register_format(MyFormat())`` at import. Built-in formats are imported by
``lighthead/datasets/__init__.py`` (``coco``, ``odgt``, ``voc``); an experiment can import its
own format module from its ``config.py``. Then ``dataset_format = '<name>'``.
"""
import collections
import os

# What the config gives a format for one split: ``<split>_source``, ``<split>_root_folder``,
# ``<split>_split`` (see lighthead.datasets.load.SPLITS). A format uses what it needs.
DataSpec = collections.namedtuple('DataSpec', ['source', 'root_folder', 'split'])

_FORMATS = collections.OrderedDict()


class DatasetFormat(object):
    """One annotation format. Subclasses set ``name`` and implement :meth:`load`.

    ``classes_from_data``: True when :meth:`load` can find the classes in the data (no
    ``class_names`` given); else the config must list them.
    """
    name = None
    description = ''
    classes_from_data = False

    def load(self, spec, class_names=None, on_bad=None, check_files=False):
        """The validated :class:`Dataset` of ``spec`` (a :class:`DataSpec`).

        ``class_names``: background first, or None (classes from the data when
        ``classes_from_data``). Every record is checked with
        :func:`~lighthead.datasets.records.validate_record` (``check_file=check_files``); a bad
        one raises BadRecordError naming the file and record or, with ``on_bad`` (a callable
        taking the error), is reported and left out.
        """
        raise NotImplementedError('%s.load' % type(self).__name__)

    def image_root(self, dataset, spec):
        """The folder COCO ``file_name`` entries are relative to (:meth:`coco_ground_truth`)."""
        if spec.root_folder:
            return spec.root_folder
        if dataset.records:
            return os.path.dirname(dataset.records[0]['fpath'])
        return os.sep

    def coco_ground_truth(self, dataset, spec):
        """Ground truth of ``dataset`` as a COCO instances dict (for pycocotools), with the
        image ids of its records and category ids ``dataset.category_ids``. Default: the
        records themselves (:func:`lighthead.datasets.convert.dataset_to_coco`)."""
        from .convert import dataset_to_coco
        return dataset_to_coco(dataset, self.image_root(dataset, spec))

    def extra_metrics(self, dataset, detections):
        """Metrics beyond COCO AP: a list of ``(key, metrics dict, one summary line)``.

        ``detections``: dicts with ``image_id``, ``category`` (contiguous class index),
        ``score`` and ``box`` ``[x1, y1, x2, y2]``. Default: none.
        """
        return []

    def to_coco(self, spec, class_names=None):
        """The annotations of ``spec`` as a COCO dict (conversion ``<name>2coco``). Default:
        :meth:`load` without image checks, then :meth:`coco_ground_truth`."""
        return self.coco_ground_truth(self.load(spec, class_names), spec)

    def write_from_coco(self, coco, dst, source='<coco>'):
        """Write the COCO dict ``coco`` to ``dst`` in this format (conversion ``coco2<name>``)."""
        raise NotImplementedError('dataset format %r cannot be written from COCO' % self.name)

    def __repr__(self):
        return '<dataset format %r>' % self.name


def register_format(fmt, replace=False):
    """Register ``fmt`` (a :class:`DatasetFormat` instance) under ``fmt.name``; returns it.

    Registering a name again is an error unless ``replace`` or the new object is of the same
    class (module and name) as the registered one (a config file executed twice)."""
    if not isinstance(fmt, DatasetFormat):
        raise TypeError('register_format needs a DatasetFormat instance, got %r' % (fmt,))
    name = fmt.name
    if not isinstance(name, str) or not name or '2' in name:
        raise ValueError('dataset format name must be a non-empty string without "2" (used '
                         'by conversions such as coco2odgt), got %r' % (name,))
    old = _FORMATS.get(name)
    if old is not None and not replace and _class_key(old) != _class_key(fmt):
        raise ValueError('dataset format %r is already registered (%s.%s); pass replace=True'
                         % (name, type(old).__module__, type(old).__name__))
    _FORMATS[name] = fmt
    return fmt


def _class_key(obj):
    return type(obj).__module__, type(obj).__name__


def unregister_format(name):
    """Remove the format ``name`` (no error when it is not registered)."""
    _FORMATS.pop(name, None)


def format_names():
    """Names of the registered formats, in registration order."""
    return list(_FORMATS)


def get_format(name):
    """The registered format ``name``; ValueError listing the registered ones otherwise."""
    fmt = _FORMATS.get(name) if isinstance(name, str) else None
    if fmt is None:
        raise ValueError('unknown dataset_format %r: registered formats are %s (add one with '
                         'lighthead.datasets.registry.register_format)'
                         % (name, ', '.join(repr(n) for n in _FORMATS) or 'none'))
    return fmt
