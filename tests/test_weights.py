"""load_pretrained: checkpoint and .npz sources, name maps, reports, shape errors."""
import json
import os

import numpy as np
import pytest

from lighthead.compat import tf
from lighthead.config import load_experiment
from lighthead.utils.tf_utils.basemodel import get_backbone
from lighthead.utils.tf_utils.weights import load_pretrained


def build(scope='xception_star', num_classes=None):
    images = tf.placeholder(tf.float32, [1, 64, 64, 3])
    get_backbone('xception_star').build(images, num_classes=num_classes, scope=scope)


def values_by_name(sess):
    variables = tf.global_variables()
    return dict(zip([v.op.name for v in variables], sess.run(variables)))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """xception_star with a 10-way classifier, an extra variable and a global step."""
    prefix = str(tmp_path_factory.mktemp('ckpt') / 'model.ckpt')
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        build(num_classes=10)
        tf.train.get_or_create_global_step()
        tf.get_variable('extra/thing', [3], initializer=tf.ones_initializer())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = values_by_name(sess)
            tf.train.Saver().save(sess, prefix)
    return prefix, values


def test_same_names_restores_everything(checkpoint, tmp_path):
    prefix, saved = checkpoint
    report = tmp_path / 'log' / 'weights.json'
    with tf.Graph().as_default():
        tf.set_random_seed(2)
        build(num_classes=10)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            result = load_pretrained(sess, prefix, {'xception_star': 'xception_star'},
                                     report_path=str(report))
            loaded = values_by_name(sess)
    assert result['missing'] == []
    assert result['unexpected'] == ['extra/thing', 'global_step']
    assert len(result['restored']) == len(saved) - 2
    for name in result['restored']:
        np.testing.assert_array_equal(loaded[name], saved[name])
    assert json.loads(report.read_text()) == result


def test_renamed_scope_missing_and_unexpected(checkpoint):
    prefix, saved = checkpoint
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        build(scope='tower_0/renamed')   # no classifier: logits unexpected
        step = tf.train.get_or_create_global_step()
        loss = tf.add_n([tf.reduce_sum(v) for v in tf.trainable_variables()])
        tf.train.MomentumOptimizer(0.1, 0.9).minimize(loss, global_step=step)
        tf.get_variable('tower_0/renamed/new_layer/weights', [2])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            unmapped = load_pretrained(sess, prefix)
            result = load_pretrained(sess, prefix, {'xception_star': 'tower_0/renamed'})
            loaded = values_by_name(sess)
    assert unmapped['restored'] == []
    # optimizer slots and global_step are not weights: never reported missing
    assert result['missing'] == ['tower_0/renamed/new_layer/weights']
    assert result['unexpected'] == ['extra/thing', 'global_step', 'xception_star/logits/biases',
                                    'xception_star/logits/weights']
    assert len(result['restored']) == len(saved) - 4
    for name in result['restored']:
        original = name.replace('tower_0/renamed', 'xception_star', 1)
        np.testing.assert_array_equal(loaded[name], saved[original])


def test_shape_mismatch_names_variable_and_shapes(checkpoint):
    prefix, _ = checkpoint
    with tf.Graph().as_default():
        build(num_classes=5)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            before = sess.run('xception_star/conv1/weights:0')
            with pytest.raises(ValueError) as error:
                load_pretrained(sess, prefix)
            after = sess.run('xception_star/conv1/weights:0')
    message = str(error.value)
    assert 'xception_star/logits/weights' in message and 'xception_star/logits/biases' in message
    assert '[1, 1, 576, 10]' in message and '[1, 1, 576, 5]' in message
    np.testing.assert_array_equal(before, after)   # nothing assigned


def test_npz_source_and_var_list(tmp_path):
    path = str(tmp_path / 'weights.npz')
    rng = np.random.RandomState(0)
    arrays = {'net/conv/weights': rng.randn(3, 3, 2, 4), 'net/conv/biases': rng.randn(4),
              'other/x': rng.randn(2)}
    np.savez(path, **arrays)
    with tf.Graph().as_default():
        with tf.variable_scope('model'):
            w = tf.get_variable('conv/weights', [3, 3, 2, 4])
            b = tf.get_variable('conv/biases', [4])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            result = load_pretrained(sess, path, {'net': 'model'}, var_list=[w])
            w_value, b_before = sess.run([w, b])
            load_pretrained(sess, path, {'net': 'model'})
            b_value = sess.run(b)
    assert result == {'restored': ['model/conv/weights'], 'missing': [],
                      'unexpected': ['net/conv/biases', 'other/x']}
    assert w_value.dtype == np.float32
    np.testing.assert_allclose(w_value, arrays['net/conv/weights'], rtol=1e-6)
    assert not np.allclose(b_before, arrays['net/conv/biases'])
    np.testing.assert_allclose(b_value, arrays['net/conv/biases'], rtol=1e-6)


def test_prefix_map_matches_whole_components(tmp_path):
    path = str(tmp_path / 'w.npz')
    np.savez(path, **{'a/v': np.ones(2), 'ab/v': np.ones(2)})
    with tf.Graph().as_default():
        tf.get_variable('b/v', [2])
        tf.get_variable('ab/v', [2])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            result = load_pretrained(sess, path, {'a': 'b'})
    assert result['restored'] == ['ab/v', 'b/v']


@pytest.mark.parametrize('name', ['nothing/model.ckpt', 'nothing.npz'])
def test_missing_file(tmp_path, name):
    with tf.Graph().as_default(), tf.Session() as sess:
        with pytest.raises(FileNotFoundError, match='nothing'):
            load_pretrained(sess, str(tmp_path / name))


def test_backbone_checkpoint_loads_into_the_detector(checkpoint, tmp_path):
    """An ImageNet-style backbone checkpoint restores every backbone variable of the detector;
    the detector's own layers are reported missing and the classifier unexpected."""
    prefix, saved = checkpoint
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _, network_cls = load_experiment(os.path.join(repo, 'experiments', 'quickstart'))
    with tf.Graph().as_default():
        net = network_cls()
        net.inference('TEST', net.get_inputs())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            report = load_pretrained(sess, prefix, {'xception_star': 'xception_star'},
                                     report_path=str(tmp_path / 'weights.json'))
            loaded = values_by_name(sess)
    backbone = [n for n in saved if n.startswith('xception_star/') and '/logits/' not in n]
    assert sorted(report['restored']) == sorted(backbone)
    for name in backbone:
        np.testing.assert_array_equal(loaded[name], saved[name])
    assert 'xception_star/cls_fc/weights' in report['missing']
    assert 'xception_star/rpn_conv/3x3/weights' in report['missing']
    assert 'xception_star/logits/weights' in report['unexpected']
    with open(str(tmp_path / 'weights.json')) as f:
        assert json.load(f)['restored'] == report['restored']
