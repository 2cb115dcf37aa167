"""Detection datasets: records, the format registry, COCO / odgt / VOC readers, validation,
conversions.

Formats are looked up by name in :mod:`lighthead.datasets.registry`; importing this package
registers the built-in ones (the imports below). The bundled synthetic data generator is
:mod:`lighthead.datasets.synthetic` (imported on demand, it is also a ``python -m`` command).
"""
from .registry import (DataSpec, DatasetFormat, format_names, get_format, register_format,
                       unregister_format)
# Built-in formats: each module registers its format when imported.
from .coco import load_coco
from .odgt import load_odgt
from .voc import load_voc, load_voc_xml
from .load import data_spec, load_dataset
from .records import (BadRecordError, BadRecordLog, Dataset, make_record, validate_record)

__all__ = ['BadRecordError', 'BadRecordLog', 'DataSpec', 'Dataset', 'DatasetFormat',
           'data_spec', 'format_names', 'get_format', 'load_coco', 'load_dataset', 'load_odgt',
           'load_voc', 'load_voc_xml', 'make_record', 'register_format', 'unregister_format',
           'validate_record']
