"""Load pretrained weights (TF checkpoint or .npz) into graph variables by name (SPEC 5.2).

Checkpoint names are mapped onto graph names with an explicit prefix map, then matched
exactly. Every name is accounted for: restored (graph variables that got a value), missing
(graph variables the checkpoint lacks; they keep their initializers) and unexpected
(checkpoint entries no graph variable asked for). A shape mismatch is an error.
"""
import json
import os
import re

import numpy as np

from lighthead.compat import tf

# Optimizer slots, step counters and EMA shadows are not model weights.
_NOT_WEIGHTS = re.compile(
    r'(^|/)(global_step|beta[12]_power)$'
    r'|/(Momentum|Adam(_\d+)?|RMSProp(_\d+)?|Adagrad|Ftrl(_\d+)?|ExponentialMovingAverage)$')


def _default_var_list(graph):
    return [v for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
            if not _NOT_WEIGHTS.search(v.op.name)]


def _map_name(name, name_map):
    """Apply the longest matching ``checkpoint prefix -> graph prefix`` rule (whole path
    components only); names matching no prefix are kept."""
    best = None
    for src in name_map:
        if (name == src or name.startswith(src + '/')) and (best is None or len(src) > len(best)):
            best = src
    if best is None:
        return name
    return name_map[best] + name[len(best):]


def _read_checkpoint(path):
    """name -> numpy array getter and the list of names, for a checkpoint prefix or .npz."""
    if path.endswith('.npz'):
        if not os.path.isfile(path):
            raise FileNotFoundError('pretrained weights: no .npz file at %s' % path)
        arrays = dict(np.load(path))
        return sorted(arrays), arrays.__getitem__, {k: v.shape for k, v in arrays.items()}
    if not (os.path.isfile(path + '.index') or os.path.isfile(path)):
        raise FileNotFoundError(
            'pretrained weights: no TF checkpoint at %s (expected %s.index and its data '
            'files, or a .npz file)' % (path, path))
    reader = tf.train.NewCheckpointReader(path)
    shapes = reader.get_variable_to_shape_map()
    return sorted(shapes), reader.get_tensor, {k: tuple(v) for k, v in shapes.items()}


def load_pretrained(sess, path, name_map=None, var_list=None, report_path=None):
    """Assign checkpoint values to graph variables in ``sess``.

    Args:
      sess: ``tf.Session`` whose graph holds the variables (run the global initializer
        first: missing variables keep whatever value they have).
      path: TF checkpoint prefix (``.../model.ckpt``; read with ``NewCheckpointReader``) or a
        ``.npz`` file of name -> array.
      name_map: dict checkpoint prefix -> graph prefix applied to the checkpoint names, e.g.
        ``{'resnet_v1_xception': 'resnet_v1_xception'}`` or ``{'xception_star':
        'tower_0/xception_star'}``. None: names are used as they are.
      var_list: variables to fill; default all global variables of ``sess.graph`` except
        optimizer slots, ``global_step`` and EMA shadows.
      report_path: if given, the result is written there as JSON.

    Returns:
      ``dict(restored=[graph names], missing=[graph names], unexpected=[checkpoint names])``,
      each sorted.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: a mapped checkpoint entry and its graph variable differ in shape (all such
        variables are named with both shapes); nothing is assigned then.
    """
    names, get_tensor, shapes = _read_checkpoint(path)
    name_map = name_map or {}
    by_graph_name = {}
    for name in names:
        by_graph_name.setdefault(_map_name(name, name_map), name)
    variables = {v.op.name: v for v in (var_list if var_list is not None
                                        else _default_var_list(sess.graph))}

    restored = sorted(n for n in variables if n in by_graph_name)
    missing = sorted(n for n in variables if n not in by_graph_name)
    used = set(by_graph_name[n] for n in restored)
    unexpected = sorted(n for n in names if n not in used)

    mismatches = []
    for graph_name in restored:
        graph_shape = tuple(variables[graph_name].get_shape().as_list())
        ckpt_shape = tuple(shapes[by_graph_name[graph_name]])
        if graph_shape != ckpt_shape:
            mismatches.append('%s (checkpoint %s): checkpoint shape %s, graph shape %s'
                              % (graph_name, by_graph_name[graph_name], list(ckpt_shape),
                                 list(graph_shape)))
    if mismatches:
        raise ValueError('pretrained weights %s: shape mismatch for\n  %s'
                         % (path, '\n  '.join(mismatches)))

    # Feeding the initial value of each variable's initializer assigns without new ops.
    feed = {}
    init_ops = []
    for graph_name in restored:
        var = variables[graph_name]
        value = np.asarray(get_tensor(by_graph_name[graph_name]))
        feed[var.initializer.inputs[1]] = value.astype(var.dtype.base_dtype.as_numpy_dtype)
        init_ops.append(var.initializer)
    if init_ops:
        sess.run(init_ops, feed_dict=feed)

    result = {'restored': restored, 'missing': missing, 'unexpected': unexpected}
    print('load_pretrained(%s): restored %d, missing %d, unexpected %d'
          % (path, len(restored), len(missing), len(unexpected)))
    if report_path:
        report_dir = os.path.dirname(report_path)
        if report_dir:
            os.makedirs(report_dir, exist_ok=True)
        with open(report_path, 'w') as f:
            json.dump(result, f, indent=1)
    return result
