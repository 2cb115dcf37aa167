"""A frozen, batch-norm-folded copy of a test graph: the fast inference path.

At inference BN is an affine map per channel, ``y = (x - mean) * gamma / sqrt(var + eps) +
beta``. When ``x`` is a convolution's output, the map folds into the convolution:
``filter * s`` with ``s = gamma / sqrt(var + eps)`` along the output channels, then a
``BiasAdd`` of ``beta - mean * s``. TensorFlow's grappler fuses ``Conv2D + BiasAdd (+ Add)
(+ Relu)`` into one oneDNN kernel, while a separate ``FusedBatchNorm`` costs a pass over the
feature map (10 % of Xception*'s forward at 700 x 1100).

    sess, tensors = frozen_session(sess, {'data': data, 'boxes': boxes, ...}, config)
    sess.run(tensors['boxes'], {tensors['data']: ...})

The folded graph computes the same function up to float32 rounding (tested to 1e-4 relative).
Only inference-mode (``is_training=False``) NHWC batch norms whose input is a ``Conv2D`` or
``DepthwiseConv2dNative`` used by nothing else are folded; everything else is kept as is.
"""
import numpy as np

from lighthead.compat import tf

_CONV_OPS = ('Conv2D', 'DepthwiseConv2dNative')
_BN_OPS = ('FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3')


def _tensor_name(name):
    """'node' / 'node:1' -> ('node', output index); control inputs ('^node') -> (node, -1)."""
    if name.startswith('^'):
        return name[1:], -1
    node, _, index = name.partition(':')
    return node, int(index or 0)


def _const_value(nodes, name):
    """numpy value of the tensor ``name`` if it is a Const (through Identity nodes), else None."""
    node_name, index = _tensor_name(name)
    node = nodes.get(node_name)
    while node is not None and node.op == 'Identity' and index == 0:
        node_name, index = _tensor_name(node.input[0])
        node = nodes.get(node_name)
    if node is None or node.op != 'Const' or index != 0:
        return None
    return tf.make_ndarray(node.attr['value'].tensor)


def _const_node(name, value):
    node = tf.NodeDef(name=name, op='Const')
    node.attr['dtype'].type = tf.float32.as_datatype_enum
    node.attr['value'].tensor.CopyFrom(tf.make_tensor_proto(value.astype(np.float32)))
    return node


def fold_batch_norms(graph_def):
    """``(GraphDef, number folded)``: a copy of the frozen ``graph_def`` in which every
    foldable BN (module docstring) is a ``BiasAdd`` of the same name after its convolution,
    whose filter is a new scaled constant. Unused constants are left for pruning."""
    nodes = {node.name: node for node in graph_def.node}
    uses = {}
    for node in graph_def.node:
        for name in node.input:
            key = _tensor_name(name)
            uses[key] = uses.get(key, 0) + 1  # control inputs count under index -1
    out = tf.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    replaced, folded = {}, 0
    for bn in graph_def.node:
        if bn.op not in _BN_OPS or bn.attr['is_training'].b:
            continue
        if bn.attr['data_format'].s not in (b'', b'NHWC'):
            continue
        if any(uses.get((bn.name, i)) for i in (-1, 1, 2, 3, 4, 5)):
            continue
        conv_name, index = _tensor_name(bn.input[0])
        conv = nodes.get(conv_name)
        if conv is None or conv.op not in _CONV_OPS or index != 0:
            continue
        if uses.get((conv_name, 0)) != 1 or uses.get((conv_name, -1)):
            continue
        values = [_const_value(nodes, name) for name in [conv.input[1]] + list(bn.input[1:5])]
        if any(v is None for v in values):
            continue
        weights, gamma, beta, mean, variance = [v.astype(np.float64) for v in values]
        scale = gamma / np.sqrt(variance + bn.attr['epsilon'].f)
        if conv.op == 'Conv2D':
            weights = weights * scale
        else:  # [kh, kw, C, multiplier]: output channel c * multiplier + m
            weights = weights * scale.reshape(weights.shape[2], weights.shape[3])
        filter_node = _const_node(conv.name + '/folded_filter', weights)
        bias_node = _const_node(bn.name + '/folded_bias', beta - mean * scale)
        new_conv = tf.NodeDef()
        new_conv.CopyFrom(conv)
        new_conv.input[1] = filter_node.name
        bias_add = tf.NodeDef(name=bn.name, op='BiasAdd', input=[conv.name, bias_node.name],
                              device=bn.device)
        bias_add.attr['T'].type = tf.float32.as_datatype_enum
        bias_add.attr['data_format'].s = b'NHWC'
        replaced[conv.name] = [filter_node, new_conv]
        replaced[bn.name] = [bias_node, bias_add]
        folded += 1
    for node in graph_def.node:
        out.node.extend(replaced.get(node.name, [node]))
    return out, folded


def frozen_inference_graph(sess, tensors, fold_bn=True):
    """Freeze the graph of ``sess`` (variables -> constants) for the tensors in the dict
    ``tensors`` (name -> Tensor or Operation; inputs and outputs alike), fold its batch norms
    (with ``fold_bn``), prune it, and import it into a new graph.

    Returns ``(graph, mapped)``: ``mapped`` has the same keys, with the new graph's tensors
    and operations.
    """
    graph = sess.graph
    elements = {k: graph.as_graph_element(v) for k, v in tensors.items()}
    keep = sorted({(e.op if isinstance(e, tf.Tensor) else e).name for e in elements.values()})
    graph_def = tf.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), keep)
    if fold_bn:
        graph_def, _ = fold_batch_norms(graph_def)
    graph_def = tf.graph_util.extract_sub_graph(graph_def, keep)
    new_graph = tf.Graph()
    with new_graph.as_default():
        tf.import_graph_def(graph_def, name='')
    return new_graph, {k: new_graph.as_graph_element(e.name) for k, e in elements.items()}


def frozen_session(sess, tensors, config=None, fold_bn=True):
    """:func:`frozen_inference_graph` of ``sess`` in a new session (``config``); ``sess`` is
    closed. Returns ``(new session, mapped)``; the graph is ``new_session.graph``."""
    graph, mapped = frozen_inference_graph(sess, tensors, fold_bn)
    sess.close()
    return tf.Session(graph=graph, config=config), mapped
