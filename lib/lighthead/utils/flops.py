"""Multiply-accumulate (MAC) counts of a graph's convolutions and matrix products.

One MAC = one multiply-add; ``FLOPs = 2 * MACs`` (the convention of the benchmark's
``gflops`` and of TF's profiler). Counted op types and their MACs (from static shapes):

    Conv2D                  prod(output shape) * kh * kw * C_in
    DepthwiseConv2dNative   prod(output shape) * kh * kw
    MatMul, BatchMatMul*    prod(output shape) * K   (the contracted dimension)

Nothing else (BN, bias, ReLU, pooling, adds) is counted, as in the paper's 145M for
Xception* at 224x224. Dilated convolutions built by ``tf.nn.convolution`` run as a Conv2D
on a space-to-batch tensor and are counted on that tensor (a little padding included).

Graphs built with ``None`` dimensions (e.g. the detector's ``data [None, None, None, 3]``
placeholder) are counted by passing ``input_shapes``: the graph is re-imported with
fixed-shape placeholders in place of those inputs so that shape inference fills in the
static shapes. Dimensions that stay unknown (e.g. the number of RoIs after NMS) are an error
unless ``unknown_dim`` gives the value to assume for them.
"""
import collections

import numpy as np

from lighthead.compat import tf

MAC_OP_TYPES = ('Conv2D', 'DepthwiseConv2dNative', 'MatMul', 'BatchMatMul', 'BatchMatMulV2',
                'BatchMatMulV3')


def _dims(shape, op, unknown_dim):
    dims = shape.as_list() if shape.ndims is not None else None
    if dims is None or None in dims:
        if unknown_dim is None:
            raise ValueError(
                'count_macs: %s (%s) has a non-static shape %s; pass input_shapes for the '
                'placeholders, or unknown_dim for dimensions that stay dynamic'
                % (op.name, op.type, shape))
        if dims is None:
            raise ValueError('count_macs: %s (%s) has unknown rank' % (op.name, op.type))
        dims = [unknown_dim if d is None else d for d in dims]
    return [int(d) for d in dims]


def _op_macs(op, unknown_dim):
    output = int(np.prod(_dims(op.outputs[0].get_shape(), op, unknown_dim), dtype=np.int64))
    if op.type == 'Conv2D':
        kh, kw, cin, _ = _dims(op.inputs[1].get_shape(), op, unknown_dim)
        return output * kh * kw * cin
    if op.type == 'DepthwiseConv2dNative':
        kh, kw, _, _ = _dims(op.inputs[1].get_shape(), op, unknown_dim)
        return output * kh * kw
    a = _dims(op.inputs[0].get_shape(), op, unknown_dim)
    if op.type == 'MatMul':
        transposed = op.get_attr('transpose_a')
    else:
        transposed = op.get_attr('adj_x')
    return output * (a[-2] if transposed else a[-1])


def _with_fixed_inputs(graph, input_shapes):
    """Copy of ``graph`` where each named tensor is a placeholder of the given shape."""
    fixed = tf.Graph()
    with fixed.as_default():
        input_map = {}
        for name, shape in input_shapes.items():
            tensor = graph.get_tensor_by_name(name if ':' in name else name + ':0')
            input_map[tensor.name] = tf.placeholder(tensor.dtype, shape,
                                                    name=tensor.op.name + '_fixed')
        tf.import_graph_def(graph.as_graph_def(), input_map=input_map, name='')
    return fixed


def count_macs(graph_or_ops, input_shapes=None, unknown_dim=None, op_types=MAC_OP_TYPES,
               breakdown=False):
    """Sum the MACs of the ops of ``op_types``.

    Args:
      graph_or_ops: a ``tf.Graph`` or an iterable of ``tf.Operation``.
      input_shapes: optional dict tensor name -> concrete shape (e.g. ``{'data': [1, 700,
        1100, 3]}``); only with a graph.
      unknown_dim: value assumed for dimensions that are still unknown (None: error).
      op_types: op types to count.
      breakdown: also return the per-op counts.

    Returns:
      int MACs, or ``(total, OrderedDict op name -> MACs)`` when ``breakdown``.
    """
    if input_shapes:
        if not isinstance(graph_or_ops, tf.Graph):
            raise TypeError('count_macs: input_shapes needs a tf.Graph')
        graph_or_ops = _with_fixed_inputs(graph_or_ops, input_shapes)
    ops = graph_or_ops.get_operations() if isinstance(graph_or_ops, tf.Graph) else graph_or_ops
    per_op = collections.OrderedDict()
    for op in ops:
        if op.type in op_types:
            per_op[op.name] = _op_macs(op, unknown_dim)
    total = sum(per_op.values())
    return (total, per_op) if breakdown else total


def profiler_flops(graph, op_types=MAC_OP_TYPES):
    """TF profiler's ``float_operation`` total over ``op_types`` (cross-check: it should be
    ``2 * count_macs(graph)``). The graph must have static shapes."""
    options = (tf.profiler.ProfileOptionBuilder(
        tf.profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .with_accounted_types(['^(%s)$' % '|'.join(op_types)])
        .build())
    return int(tf.profiler.profile(graph, options=options).total_float_ops)
