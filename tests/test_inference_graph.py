"""The frozen, BN-folded inference graph computes what the graph with variables computes."""
import numpy as np

from lighthead.compat import tf
from lighthead.eval.predictor import Predictor
from lighthead.layers import batch_norm, conv2d, separable_conv2d
from lighthead.utils.tf_utils.inference_graph import fold_batch_norms, frozen_inference_graph


def randomise_batch_norms(sess, seed=0, variance=(0.5, 1.5)):
    """Non-trivial BN parameters and statistics (the initial ones make BN the identity);
    ``moving_variance`` uniform in ``variance``."""
    rng = np.random.RandomState(seed)
    for var in tf.global_variables():
        shape = var.shape.as_list()
        if var.op.name.endswith('gamma'):
            sess.run(var.assign(rng.uniform(0.5, 1.5, shape)))
        elif var.op.name.endswith('moving_variance'):
            sess.run(var.assign(rng.uniform(variance[0], variance[1], shape)))
        elif var.op.name.endswith(('beta', 'moving_mean')):
            sess.run(var.assign(rng.uniform(-0.5, 0.5, shape)))


def bn_count(graph):
    return sum(op.type.startswith('FusedBatchNorm') for op in graph.get_operations())


def test_folds_conv_and_depthwise_batch_norms_only_where_exact():
    bn = {'is_training': False, 'scale': True}
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [1, 9, 11, 3], name='x')
        a = conv2d(x, 8, 3, normalizer_fn=batch_norm, normalizer_params=bn, scope='a')
        b = separable_conv2d(a, None, 3, depth_multiplier=2, stride=2, normalizer_fn=batch_norm,
                             normalizer_params=bn, activation_fn=None, scope='b')
        # The conv output is also read directly: its BN must stay.
        c_conv = conv2d(b, 4, 1, activation_fn=None, scope='c')
        c = batch_norm(c_conv, is_training=False, scale=True, scope='c_bn') + c_conv
        # BN not after a convolution: stays.
        d = batch_norm(tf.nn.relu(c), is_training=False, scope='d_bn')
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            randomise_batch_norms(sess)
            feed = np.random.RandomState(1).normal(0, 1, (1, 9, 11, 3)).astype(np.float32)
            expected = sess.run(d, {x: feed})
            frozen = tf.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [d.op.name])
            new_graph, mapped = frozen_inference_graph(sess, {'x': x, 'd': d})
    assert fold_batch_norms(frozen)[1] == 2
    assert bn_count(graph) == 4 and bn_count(new_graph) == 2
    types = {op.name: op.type for op in new_graph.get_operations()}
    assert types['a/BatchNorm/FusedBatchNormV3'] == 'BiasAdd'
    assert types['b/BatchNorm/FusedBatchNormV3'] == 'BiasAdd'
    assert not any(op.type == 'VariableV2' or op.type == 'VarHandleOp'
                   for op in new_graph.get_operations())
    with tf.Session(graph=new_graph) as sess:
        got = sess.run(mapped['d'], {mapped['x']: feed})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(expected).max() > 0.1


def test_predictor_detections_are_the_same_with_folded_batch_norms(load_network, tmp_path):
    network_cls, cfg = load_network('quickstart', [
        'image_short_size=160', 'image_max_size=224', 'TEST.RPN_PRE_NMS_TOP_N=300',
        'TEST.RPN_POST_NMS_TOP_N=50', 'TEST.SCORE_THRESH=0.0'])
    prefix = str(tmp_path / 'model.ckpt')
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        net = network_cls()
        net.inference('TEST', net.get_inputs())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            # Variances near those of the He-initialised layers' outputs: with unit ones the
            # random network's activations grow through the units and every score is 1.
            randomise_batch_norms(sess, variance=(2.0, 6.0))
            tf.train.Saver().save(sess, prefix)
    image = np.random.RandomState(2).randint(0, 256, (150, 200, 3)).astype(np.uint8)
    results = []
    for fold_bn in (False, True):
        predictor = Predictor(cfg, network_cls(), prefix, fold_bn=fold_bn)
        try:
            results.append((predictor.predict_image(image), bn_count(predictor.graph)))
        finally:
            predictor.close()
    (plain, plain_bns), (folded, folded_bns) = results
    assert plain_bns > 40 and folded_bns == 0
    assert len(plain['scores']) > 10
    order_p, order_f = np.argsort(-plain['scores']), np.argsort(-folded['scores'])
    np.testing.assert_allclose(folded['scores'][order_f], plain['scores'][order_p],
                               rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(folded['boxes'][order_f][:10], plain['boxes'][order_p][:10],
                               rtol=1e-3, atol=1e-2)
