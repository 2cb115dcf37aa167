"""One TensorFlow for the whole package: ``tf.compat.v1`` in graph mode.

Every module imports ``tf`` from here, so the same source runs on TF 2.x and TF 1.15.
"""
import tensorflow as _tf

tf = _tf.compat.v1
tf.disable_v2_behavior()

TF_VERSION = tuple(int(p) for p in _tf.__version__.split('.')[:2])
IS_TF1 = TF_VERSION[0] == 1
