"""Detection datasets: records, COCO / odgt / VOC readers, validation, conversions.

The bundled synthetic data generator is :mod:`lighthead.datasets.synthetic` (imported on
demand, it is also a ``python -m`` command).
"""
from .coco import load_coco
from .load import load_dataset
from .odgt import load_odgt
from .records import (BadRecordError, BadRecordLog, Dataset, make_record, validate_record)
from .voc import load_voc, load_voc_xml

__all__ = ['BadRecordError', 'BadRecordLog', 'Dataset', 'load_coco', 'load_dataset',
           'load_odgt', 'load_voc', 'load_voc_xml', 'make_record', 'validate_record']
