"""lighthead.checkpoint: resolving what the user passes, the resume-or-pretrained plan, and the
check that a checkpoint fits the graph before a restore (tools exit with one line)."""
import logging
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from lighthead import checkpoint as ckpt
from lighthead.compat import tf
from lighthead.config import REPO_ROOT, load_experiment, make_config
from lighthead.train.trainer import Trainer

QUICKSTART = os.path.join(REPO_ROOT, 'experiments', 'quickstart')


def save_graph(prefix_or_dir, shapes, name=None):
    """Save a graph of float variables ``{name: shape}`` (value 1). With ``name``: atomically
    as ``prefix_or_dir/name`` (indexed); else a plain Saver save at the prefix. Returns the
    prefix."""
    with tf.Graph().as_default():
        for var_name, shape in shapes.items():
            tf.get_variable(var_name, shape, tf.float32, tf.ones_initializer())
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            if name is None:
                os.makedirs(os.path.dirname(prefix_or_dir), exist_ok=True)
                saver.save(sess, prefix_or_dir, write_meta_graph=False)
                return prefix_or_dir
            return ckpt.save_checkpoint(saver, sess, prefix_or_dir, name)


def restore_into(prefix, shapes, experiment='exp_b'):
    """Build a graph of ``{name: shape}`` and :func:`ckpt.restore` ``prefix`` into it; returns
    the restored values by name."""
    with tf.Graph().as_default():
        variables = [tf.get_variable(n, s, tf.float32, tf.zeros_initializer())
                     for n, s in shapes.items()]
        with tf.Session() as sess:
            ckpt.restore(sess, prefix, experiment=experiment)
            return dict((v.op.name, sess.run(v)) for v in variables)


# ----------------------------------------------------------------------------------- resolve

def test_resolve_a_prefix_its_files_a_folder_and_an_output_folder(tmp_path):
    out = tmp_path / 'output'
    model_dump = str(out / 'model_dump')
    save_graph(model_dump, {'v': [2]}, 'epoch_1.ckpt')
    newest = save_graph(model_dump, {'v': [2]}, 'iter_5.ckpt')
    first = os.path.join(model_dump, 'epoch_1.ckpt')
    assert ckpt.resolve_checkpoint(first) == first
    assert ckpt.resolve_checkpoint(first + '.index') == first
    assert ckpt.resolve_checkpoint(first + '.data-00000-of-00001') == first
    assert ckpt.resolve_checkpoint(model_dump) == newest
    assert ckpt.resolve_checkpoint(str(out)) == newest
    assert ckpt.resolve_checkpoint(model_dump, epoch=1) == first


def test_resolve_a_missing_prefix_names_it_and_what_exists(tmp_path):
    model_dump = str(tmp_path / 'model_dump')
    save_graph(model_dump, {'v': [2]}, 'epoch_1.ckpt')
    missing = os.path.join(model_dump, 'epoch_9.ckpt')
    with pytest.raises(ckpt.CheckpointNotFoundError) as info:
        ckpt.resolve_checkpoint(missing)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert message.startswith('checkpoint %s not found: looked for %s.index.' % (missing, missing))
    assert 'Checkpoints in %s: epoch_1.ckpt.' % model_dump in message
    assert 'Pass a checkpoint prefix' in message and '\n' not in message

    gone = str(tmp_path / 'no_such_dir' / 'x.ckpt')
    with pytest.raises(ckpt.CheckpointNotFoundError, match='which does not exist'):
        ckpt.resolve_checkpoint(gone)


def test_resolve_a_folder_without_an_index(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ckpt.CheckpointNotFoundError) as info:
        ckpt.resolve_checkpoint(str(empty))
    assert str(info.value).startswith('no checkpoint in folder %s: looked for a `checkpoint` '
                                      'index' % empty)
    # Checkpoint files without an index are named, not guessed.
    loose = str(tmp_path / 'loose')
    save_graph(os.path.join(loose, 'a.ckpt'), {'v': [2]})
    os.remove(os.path.join(loose, 'checkpoint'))
    with pytest.raises(ckpt.CheckpointNotFoundError) as info:
        ckpt.resolve_checkpoint(loose)
    assert 'Checkpoints in %s: a.ckpt. Pass one of those as FOLDER/NAME.' % loose \
        in str(info.value)


def test_resolve_an_epoch(tmp_path):
    model_dump = str(tmp_path / 'model_dump')
    for name in ('epoch_1.ckpt', 'epoch_2.ckpt'):
        save_graph(model_dump, {'v': [2]}, name)
    assert ckpt.resolve_checkpoint(model_dump, epoch=2) == os.path.join(model_dump,
                                                                         'epoch_2.ckpt')
    with pytest.raises(ckpt.CheckpointNotFoundError) as info:
        ckpt.resolve_checkpoint(model_dump, epoch=5)
    message = str(info.value)
    assert message.startswith('checkpoint %s not found: looked for epoch_5.ckpt.index.'
                              % os.path.join(model_dump, 'epoch_5.ckpt'))
    assert 'epoch_1.ckpt, epoch_2.ckpt' in message and '-se N' in message


def test_evaluate_epoch_of_a_missing_epoch_raises_before_evaluating(tmp_path):
    from lighthead.eval import cli as eval_cli
    cfg = make_config(output_dir=str(tmp_path / 'out'))
    with pytest.raises(ckpt.CheckpointNotFoundError, match='epoch_3.ckpt'):
        eval_cli.evaluate_epoch(cfg, None, 3, dataset=None, gt=None)
    assert not os.path.exists(cfg.eval_dir)


# -------------------------------------------------------------------------------- plan_start

def test_plan_resume_wins_when_there_is_a_checkpoint(tmp_path):
    model_dump = str(tmp_path / 'model_dump')
    prefix = save_graph(model_dump, {'v': [2]}, 'iter_3.ckpt')
    # The weights are not even looked at when resuming.
    plan = ckpt.plan_start(model_dump, True, str(tmp_path / 'missing.npz'), 'missing_too')
    assert plan == ckpt.StartPlan(ckpt.RESUME, prefix, None)
    # Without -c the checkpoint is ignored.
    assert ckpt.plan_start(model_dump, False, 'none', None).action == ckpt.SCRATCH


def test_plan_without_a_checkpoint_to_resume(tmp_path):
    model_dump = str(tmp_path / 'model_dump')
    weights = tmp_path / 'backbone.npz'
    np.savez(str(weights), v=np.zeros(2))
    plan = ckpt.plan_start(model_dump, True, None, str(weights))
    assert plan.action == ckpt.PRETRAINED and plan.path == str(weights)
    assert plan.note == '-c given but no checkpoint in %s; starting a new run' % model_dump
    plan = ckpt.plan_start(model_dump, True, 'None', str(weights))
    assert plan.action == ckpt.SCRATCH and plan.path is None and plan.note


def test_plan_weights(tmp_path):
    model_dump = str(tmp_path / 'model_dump')
    prefix = save_graph(str(tmp_path / 'backbone.ckpt'), {'v': [2]})
    assert ckpt.plan_start(model_dump, False, None, prefix) == \
        ckpt.StartPlan(ckpt.PRETRAINED, prefix, None)
    assert ckpt.plan_start(model_dump, False, prefix, None).path == prefix
    assert ckpt.plan_start(model_dump, False, 'none', prefix) == \
        ckpt.StartPlan(ckpt.SCRATCH, None, None)
    assert ckpt.plan_start(model_dump, False, None, None).action == ckpt.SCRATCH
    assert ckpt.plan_start(model_dump, False, None, '').action == ckpt.SCRATCH
    for weights, default in ((None, 'nowhere/default.ckpt'), ('nowhere/given.npz', prefix)):
        with pytest.raises(ckpt.CheckpointNotFoundError) as info:
            ckpt.plan_start(model_dump, False, weights, default)
        missing = weights or default
        assert str(info.value).startswith('pretrained weights %s not found: looked for %s and '
                                          '%s.index.' % (missing, missing, missing))
        assert '--weights none' in str(info.value)


def _fake_trainer(tmp_path, shapes):
    """What ``Trainer._start`` uses of a Trainer, on a tiny graph of ``{name: shape}``."""
    graph = tf.Graph()
    with graph.as_default():
        for n, s in shapes.items():
            tf.get_variable(n, s, tf.float32, tf.zeros_initializer())
        global_step = tf.train.get_or_create_global_step()
        epoch = tf.get_variable('epoch', [], tf.int64, tf.zeros_initializer(), trainable=False)
        fake = types.SimpleNamespace(
            cfg=make_config(exp_name='tiny', output_dir=str(tmp_path / 'out')),
            init_op=tf.global_variables_initializer(), saver=tf.train.Saver(),
            global_step=global_step, epoch=epoch, assign_step=tf.assign(global_step, 7))
    return graph, fake


def test_trainer_start_executes_the_plan(tmp_path, capsys):
    logger = logging.getLogger('test_trainer_start')
    graph, fake = _fake_trainer(tmp_path, {'w': [2]})
    with graph.as_default(), tf.Session() as sess:
        sess.run(fake.init_op)
        sess.run(fake.assign_step)
        prefix = ckpt.save_checkpoint(fake.saver, sess, fake.cfg.model_dump_dir, 'iter_7.ckpt')
    with graph.as_default(), tf.Session() as sess:
        plan = ckpt.StartPlan(ckpt.SCRATCH, None, 'a note')
        assert Trainer._start(fake, sess, plan, logger) == 0
        assert ckpt.plan_start(fake.cfg.model_dump_dir, True).path == prefix
        assert Trainer._start(fake, sess, ckpt.plan_start(fake.cfg.model_dump_dir, True),
                              logger) == 7
    printed = capsys.readouterr().out
    assert 'lighthead: a note' in printed
    assert 'lighthead: resumed from %s (step 7, epoch 0)' % prefix in printed

    # Resuming into a graph whose variable has another shape: the clear error, not TF's.
    graph, other = _fake_trainer(tmp_path, {'w': [3]})
    with graph.as_default(), tf.Session() as sess:
        with pytest.raises(ckpt.CheckpointMismatchError, match="does not fit experiment 'tiny'"):
            Trainer._start(other, sess, ckpt.StartPlan(ckpt.RESUME, prefix, None), logger)


# ------------------------------------------------------------------------------ the mismatch

def test_a_checkpoint_with_more_variables_restores(tmp_path):
    prefix = save_graph(str(tmp_path / 'a.ckpt'), {'v': [3], 'extra': [2]})
    assert restore_into(prefix, {'v': [3]})['v'].tolist() == [1.0, 1.0, 1.0]


def test_a_variable_of_another_shape(tmp_path):
    prefix = save_graph(str(tmp_path / 'a.ckpt'), {'v': [3], 'w': [2, 2]})
    with pytest.raises(ckpt.CheckpointMismatchError) as info:
        restore_into(prefix, {'v': [3], 'w': [2, 5]})
    message = str(info.value)
    assert isinstance(info.value, ValueError) and '\n' not in message
    assert message.startswith("checkpoint %s does not fit experiment 'exp_b': 1 of its 2 "
                              'variables differ (1 with another shape, 0 missing' % prefix)
    assert 'w: checkpoint [2, 2], graph [2, 5]' in message
    assert 'another experiment or backbone' in message
    assert info.value.differences == [('w', [2, 2], [2, 5])]
    assert info.value.class_counts is None


def test_a_variable_missing_from_the_checkpoint(tmp_path):
    prefix = save_graph(str(tmp_path / 'a.ckpt'), {'v': [3]})
    with pytest.raises(ckpt.CheckpointMismatchError) as info:
        restore_into(prefix, {'v': [3], 'block/u': [5, 1]})
    message = str(info.value)
    assert '(0 with another shape, 1 missing from the checkpoint)' in message
    assert 'block/u [5, 1]: not in the checkpoint' in message
    assert info.value.differences == [('block/u', None, [5, 1])]


def test_many_differences_are_cut_to_five(tmp_path):
    prefix = save_graph(str(tmp_path / 'a.ckpt'), dict(('v%d' % i, [2]) for i in range(8)))
    with pytest.raises(ckpt.CheckpointMismatchError) as info:
        restore_into(prefix, dict(('v%d' % i, [4]) for i in range(8)))
    message = str(info.value)
    assert '8 of its 8 variables differ' in message and '; and 3 more.' in message
    assert message.count(': checkpoint [2], graph [4]') == 5


HEAD = {'body/conv/weights': [3, 3, 4, 8], 'head/cls_fc/weights': [8, None],
        'head/cls_fc/biases': [None], 'head/bbox_fc/weights': [8, '4C'],
        'head/bbox_fc/biases': ['4C']}


def head_shapes(num_classes):
    def dim(d):
        return num_classes if d is None else 4 * num_classes if d == '4C' else d
    return dict((n, [dim(d) for d in s]) for n, s in HEAD.items())


def test_another_class_count_is_named(tmp_path):
    prefix = save_graph(str(tmp_path / 'a.ckpt'), head_shapes(6))
    with pytest.raises(ckpt.CheckpointMismatchError) as info:
        restore_into(prefix, head_shapes(3))
    message = str(info.value)
    assert info.value.class_counts == (6, 3)
    assert 'trained for 6 classes, experiment \'exp_b\' has 3' in message
    assert 'head/bbox_fc/weights: checkpoint [8, 24], graph [8, 12]' in message
    assert 'another experiment or backbone' not in message
    # Only one of the two layers in the graph: recognised by its name.
    for layer, counts in (('cls_fc', (6, 3)), ('bbox_fc', (6, 3))):
        only = dict((n, s) for n, s in head_shapes(6).items() if layer in n)
        prefix_one = save_graph(str(tmp_path / (layer + '.ckpt')), only)
        with pytest.raises(ckpt.CheckpointMismatchError) as info:
            restore_into(prefix_one, dict((n, s) for n, s in head_shapes(3).items()
                                          if layer in n))
        assert info.value.class_counts == counts
    # Another backbone too: not the class-count case.
    other = head_shapes(3)
    other['body/conv/weights'] = [3, 3, 4, 16]
    with pytest.raises(ckpt.CheckpointMismatchError) as info:
        restore_into(prefix, other)
    assert info.value.class_counts is None and 'another experiment or backbone' in str(info.value)


def test_an_unreadable_checkpoint(tmp_path):
    prefix = str(tmp_path / 'broken.ckpt')
    with open(prefix + '.index', 'wb') as f:
        f.write(b'not a checkpoint')
    with pytest.raises(ckpt.CheckpointMismatchError, match='cannot be read'):
        restore_into(prefix, {'v': [3]})


# ------------------------------------------------------------------------------------ a tool

@pytest.fixture(scope='module')
def quickstart_checkpoint(tmp_path_factory):
    """A checkpoint of the quickstart test graph (6 classes), randomly initialised."""
    prefix = str(tmp_path_factory.mktemp('quickstart_ckpt') / 'random.ckpt')
    _, network_cls = load_experiment(QUICKSTART)
    with tf.Graph().as_default():
        net = network_cls()
        net.inference('TEST', net.get_inputs())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver().save(sess, prefix)
    return prefix


def test_predict_with_a_checkpoint_of_another_class_count_exits_with_one_line(
        tmp_path, quickstart_checkpoint):
    image = str(tmp_path / 'x.png')
    cv2.imwrite(image, np.zeros((64, 80, 3), np.uint8))
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, 'tools', 'predict.py'), '--exp', QUICKSTART,
         '--ckpt', quickstart_checkpoint, '--out', str(tmp_path / 'out'), image,
         '--set', "class_names=['background', 'a', 'b']"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=300)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if 'lighthead:' in line]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith('lighthead: checkpoint %s does not fit experiment '
                               "'quickstart'" % quickstart_checkpoint)
    assert 'trained for 6 classes' in lines[0] and 'has 3' in lines[0]
    assert not os.path.exists(str(tmp_path / 'out' / 'x.png'))


def test_train_py_with_missing_weights_exits_with_one_line_before_building(tmp_path):
    from lighthead.train import cli as train_cli
    cfg = make_config(output_dir=str(tmp_path / 'out'), weight=str(tmp_path / 'default.ckpt'))
    for argv, missing in (([], cfg.weight), (['--weights', str(tmp_path / 'w.npz')],
                                             str(tmp_path / 'w.npz'))):
        # network_cls None: the plan fails before any network is built.
        with pytest.raises(SystemExit) as info:
            train_cli.main(cfg, None, argv)
        message = str(info.value.code)
        assert message.startswith('lighthead: pretrained weights %s not found' % missing)
        assert '\n' not in message
