"""Session settings shared by evaluation, prediction and benchmarks: threads and precision.

TensorFlow is imported on first use, so command lines can import ``PRECISIONS`` cheaply.
"""
PRECISIONS = ('fp32', 'bf16')
_BF16_FIELD = 'auto_mixed_precision_onednn_bfloat16'


class UnsupportedPrecision(RuntimeError):
    """The requested precision cannot be enabled with this TensorFlow."""


def session_config(threads, precision='fp32'):
    """ConfigProto with ``threads`` intra- and inter-op threads; ``'bf16'`` turns on grappler's
    oneDNN auto mixed precision (float32 graph, bfloat16 compute where oneDNN has kernels;
    raises :class:`UnsupportedPrecision` if this TensorFlow lacks the option)."""
    from lighthead.compat import tf
    if precision not in PRECISIONS:
        raise ValueError('precision must be one of %s, got %r' % (PRECISIONS, precision))
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    if precision == 'bf16':
        rewrite = config.graph_options.rewrite_options
        if _BF16_FIELD not in rewrite.DESCRIPTOR.fields_by_name:
            raise UnsupportedPrecision(
                'bf16 needs RewriterConfig.%s, which TensorFlow %s does not have'
                % (_BF16_FIELD, tf.VERSION))
        setattr(rewrite, _BF16_FIELD, type(rewrite).ON)
    return config
