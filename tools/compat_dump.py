"""Write or restore a checkpoint of an experiment's TEST graph and dump what it computes.

Used by ``tests/test_tf_compat.py`` to check that checkpoints move between TF 1.15 and TF 2.x:
one interpreter saves, the other restores, and the dumps are compared.

    python tools/compat_dump.py save    DIR [--exp experiments/quickstart] [--seed 7]
    python tools/compat_dump.py restore DIR [--exp experiments/quickstart] [--rois NPZ]

The network is the experiment's ``network_desp.Network`` bound to its ``config.py``
(``lighthead.config.load_experiment``). ``save`` initialises it with a fixed graph seed
(reproducible within one TF version; TF 1.15 and 2.x derive different op seeds from it),
calibrates its batch-norm statistics on the fixed input (``calibrate_batch_norm``: at random
init the RPN saturates and the two TFs' rounding decides which degenerate boxes survive) and
writes the checkpoint ``DIR/model.ckpt`` and ``DIR/save.npz``; ``restore`` restores
``DIR/model.ckpt`` and writes ``DIR/restore-tf<major>.npz``. Each .npz holds, for one fixed
input image (see ``fixed_input``):

* ``var/<name>``: every global variable's value (after init, resp. after restore);
* ``out/<name>``: the test collection (``cls_score``, ``cls_prob``, ``bbox_pred``, ``rois``
  ``[R, 5]``, ``detections/boxes|scores|classes|num``) and the dense tensors ``rpn_cls_prob``
  and ``thin_feature``, computed end to end;
* with ``--rois NPZ`` (restore only): ``fed/<name>``, the test collection computed with the RoIs
  of that dump fed in place of the proposals, so that the R-CNN head and the post-processing are
  compared on the same boxes even if near-tied RPN scores order differently in the two TFs.
* ``meta/tf_version``.
"""
import argparse
import os
import sys

import numpy as np

from lighthead.compat import TF_VERSION, tf
from lighthead.config import load_experiment
from lighthead.data.transforms import make_im_info
from lighthead.utils.tf_utils.bn_calibration import calibrate_batch_norm

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_EXP = os.path.join(REPO_ROOT, 'experiments', 'quickstart')
CKPT_NAME = 'model.ckpt'
SAVE_NPZ = 'save.npz'
RESTORE_NPZ = 'restore-tf%d.npz'  # % TF major version
# Dense tensors of the (Light-Head R-CNN) TEST graph (op names, under whatever name scope), dumped
# in addition to its test collection.
DENSE_TENSORS = ('rpn_cls_prob', 'thin_feature')


def fixed_input(height=256, width=320, seed=0):
    """One deterministic image: ``data`` [1, H, W, 3] float32 (RGB minus the means, here noise
    with some smooth structure) and ``im_info`` [1, 6] = (H, W, 1, H, W, 0)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    smooth = 60.0 * np.sin(xx / 17.0)[..., None] * np.cos(yy / 23.0)[..., None]
    data = (smooth + rng.uniform(-40.0, 40.0, (height, width, 3))).astype(np.float32)[None]
    return data, make_im_info((height, width), 1.0, (height, width))


def _dense_tensor(graph, name):
    """Output 0 of the one op called ``name`` in any name scope."""
    ops = [op for op in graph.get_operations()
           if op.name == name or op.name.endswith('/' + name)]
    if len(ops) != 1:
        raise SystemExit('compat_dump: expected one op named */%s in the graph, found %s'
                         % (name, [op.name for op in ops]))
    return ops[0].outputs[0]


def dump(mode, out_dir, exp_dir=DEFAULT_EXP, seed=7, rois_npz=None):
    """Build the TEST graph, save (mode 'save') or restore (mode 'restore'), run, write the npz.

    Returns the path of the .npz written.
    """
    _, network_cls = load_experiment(exp_dir)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        net = network_cls()
        inputs = net.get_inputs()
        net.inference('TEST', inputs)
        collection = net.get_test_collection()
        fetches = dict(collection)
        for name in DENSE_TENSORS:
            fetches[name] = _dense_tensor(graph, name)
        variables = tf.global_variables()
        saver = tf.train.Saver(variables)
        ckpt = os.path.join(out_dir, CKPT_NAME)
        with tf.Session(graph=graph) as sess:
            data, im_info = fixed_input()
            feed = {inputs[0]: data, inputs[1]: im_info}
            if mode == 'save':
                sess.run(tf.global_variables_initializer())
                if not calibrate_batch_norm(sess, feed):
                    raise SystemExit('compat_dump: no batch norm found to calibrate in %s'
                                     % exp_dir)
                os.makedirs(out_dir, exist_ok=True)
                saver.save(sess, ckpt, write_meta_graph=False, write_state=False)
            else:
                saver.restore(sess, ckpt)
            result = {'meta/tf_version': np.array(tf.VERSION)}
            for v, value in zip(variables, sess.run(variables)):
                result['var/' + v.op.name] = value
            for name, value in sess.run(fetches, feed).items():
                result['out/' + name] = value
            if rois_npz is not None:
                feed[collection['rois']] = np.load(rois_npz)['out/rois']
                fed = {k: v for k, v in collection.items() if k != 'rois'}
                for name, value in sess.run(fed, feed).items():
                    result['fed/' + name] = value
    path = os.path.join(out_dir, SAVE_NPZ if mode == 'save' else RESTORE_NPZ % TF_VERSION[0])
    np.savez(path, **result)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('mode', choices=('save', 'restore'))
    p.add_argument('dir', help='folder of model.ckpt and the .npz dumps')
    p.add_argument('--exp', default=DEFAULT_EXP, help='experiment folder (default: quickstart)')
    p.add_argument('--seed', type=int, default=7, help='graph-level seed of the initialisers')
    p.add_argument('--rois', default=None,
                   help='restore: also run the head on the RoIs (out/rois) of this .npz')
    args = p.parse_args(argv)
    if args.rois and args.mode != 'restore':
        p.error('--rois goes with restore')
    print(dump(args.mode, args.dir, args.exp, args.seed, args.rois))
    return 0


if __name__ == '__main__':
    sys.exit(main())
