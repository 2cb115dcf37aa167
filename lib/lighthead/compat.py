"""One TensorFlow for the whole package: ``tf.compat.v1`` in graph mode.

Every module imports ``tf`` from here, so the same source runs on TF 2.x and TF 1.15.

TensorFlow's C++ INFO lines (CPU feature guard, oneDNN notices) are hidden unless the user set
``TF_CPP_MIN_LOG_LEVEL`` (it only takes effect if TensorFlow was not imported before lighthead),
and so is the deprecation notice of switching to graph mode; warnings and errors still show.
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

import tensorflow as _tf  # noqa: E402  (after the log level, which it reads on import)

tf = _tf.compat.v1
_logger = _tf.get_logger()
_level = _logger.level
_logger.setLevel('ERROR')
try:
    tf.disable_v2_behavior()
finally:
    _logger.setLevel(_level)

TF_VERSION = tuple(int(p) for p in _tf.__version__.split('.')[:2])
IS_TF1 = TF_VERSION[0] == 1
