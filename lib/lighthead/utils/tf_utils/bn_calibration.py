"""Batch-norm statistics of a randomly initialised network, set from one input.

A randomly initialised Xception* or ResNet whose batch norms hold identity statistics (mean 0,
variance 1) grows its activations through the residual blocks: the RPN's softmax saturates, the
proposals collapse onto the image border and every detection is a degenerate box. A network
used without trained weights (benchmarks, cross-version checks) is more representative after
:func:`calibrate_batch_norm`: its activations have the scale of a trained network's.
"""
import numpy as np

from lighthead.compat import tf

_BN_OPS = ('FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3')


def calibrate_batch_norm(sess, feed):
    """Set each inference-mode batch norm's ``moving_mean`` / ``moving_variance`` to the
    per-channel mean and variance of its input on ``feed``, one layer at a time in graph
    order (so each layer sees the already calibrated layers before it).

    Args:
      sess: a session whose graph holds the network, variables initialised.
      feed: the feed dict of one forward pass (e.g. ``{data: [N, H, W, 3], im_info: ...}``).

    Returns the number of batch norms calibrated. Batch norms whose statistics are not plain
    variables (e.g. folded or constant) are left alone.
    """
    graph = sess.graph
    with graph.as_default():
        by_read = {v.value().op.name: v for v in tf.global_variables()}
        count = 0
        for op in graph.get_operations():
            if op.type not in _BN_OPS or op.get_attr('is_training'):
                continue
            mean_var = by_read.get(op.inputs[3].op.name)
            variance_var = by_read.get(op.inputs[4].op.name)
            if mean_var is None or variance_var is None:
                continue
            x = sess.run(op.inputs[0], feed).astype(np.float64)
            axes = tuple(range(x.ndim - 1))
            sess.run([tf.assign(mean_var, x.mean(axis=axes).astype(np.float32)),
                      tf.assign(variance_var, x.var(axis=axes).astype(np.float32))])
            count += 1
    return count
