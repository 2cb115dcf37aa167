"""Atomic checkpoints and their index, the training schedule, and config overrides."""
import os

import numpy as np
import pytest

from lighthead import checkpoint as ckpt
from lighthead.compat import tf
from lighthead.config import apply_overrides, make_config, parse_override
from lighthead.train.schedule import Schedule, lr_at_epoch


class Model(object):
    """A graph with one variable ``v`` [3] and a saver, in its own session."""

    def __init__(self):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.v = tf.get_variable('v', [3], tf.float32, tf.zeros_initializer())
            self.value = tf.placeholder(tf.float32, [3])
            self.assign = tf.assign(self.v, self.value)
            self.saver = tf.train.Saver()
        self.sess = tf.Session(graph=self.graph)

    def set(self, value):
        self.sess.run(self.assign, {self.value: np.full(3, value, np.float32)})

    def get(self):
        return float(self.sess.run(self.v)[0])

    def save(self, model_dir, name, value):
        self.set(value)
        return ckpt.save_checkpoint(self.saver, self.sess, model_dir, name)

    def restore(self, prefix):
        with self.graph.as_default():
            ckpt.restore(self.sess, prefix)
        return self.get()


@pytest.fixture
def model():
    m = Model()
    yield m
    m.sess.close()


class Interrupted(Exception):
    pass


def fail_on_call(monkeypatch, target, name, nth):
    """Make the ``nth`` call (1-based) of ``target.name`` raise Interrupted."""
    original = getattr(target, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) == nth:
            raise Interrupted('simulated crash in %s' % name)
        return original(*args, **kwargs)
    monkeypatch.setattr(target, name, wrapper)


def fail_inside_save(monkeypatch, model):
    """saver.save writes a partial data file under its prefix, then crashes."""
    def partial_save(sess, prefix, **kwargs):
        with open(prefix + '.data-00000-of-00001', 'wb') as f:
            f.write(b'\0' * 7)
        raise Interrupted('simulated crash in saver.save')
    monkeypatch.setattr(model.saver, 'save', partial_save)


# Crash points of save_checkpoint: inside saver.save; after the data file was renamed into place
# but before the .index; after both renames but before the new `checkpoint` index replaced the old.
CRASHES = {
    'during_save': lambda mp, m: fail_inside_save(mp, m),
    'before_index_file_rename': lambda mp, m: fail_on_call(mp, os, 'replace', 2),
    'before_checkpoint_index_rename': lambda mp, m: fail_on_call(mp, os, 'replace', 3),
}


@pytest.mark.parametrize('crash', sorted(CRASHES))
def test_interrupted_save_keeps_the_previous_checkpoint(crash, model, tmp_path, monkeypatch):
    model_dir = str(tmp_path / 'model_dump')
    old = model.save(model_dir, 'iter_10.ckpt', 1.0)
    with monkeypatch.context() as mp:
        CRASHES[crash](mp, model)
        with pytest.raises(Interrupted):
            model.save(model_dir, 'iter_20.ckpt', 2.0)
    assert ckpt.latest_checkpoint(model_dir) == old
    assert ckpt.list_checkpoints(model_dir) == ['iter_10.ckpt']
    assert tf.train.latest_checkpoint(model_dir) == old
    # Whatever has an .index in place is complete (test.py looks for epoch_N.ckpt.index).
    for name in os.listdir(model_dir):
        if name.endswith('.ckpt.index') and not name.startswith('.tmp-'):
            prefix = os.path.join(model_dir, name[:-len('.index')])
            tf.train.load_checkpoint(prefix).get_tensor('v')
    model.set(5.0)
    assert model.restore(ckpt.latest_checkpoint(model_dir)) == 1.0

    # The next save of that name succeeds and leaves no temporary file behind.
    new = model.save(model_dir, 'iter_20.ckpt', 3.0)
    assert ckpt.list_checkpoints(model_dir) == ['iter_10.ckpt', 'iter_20.ckpt']
    assert ckpt.latest_checkpoint(model_dir) == new
    assert not [n for n in os.listdir(model_dir) if n.startswith('.tmp-')]
    assert model.restore(new) == 3.0 and model.restore(old) == 1.0


def files_of(model_dir):
    return sorted(set(n.split('.ckpt')[0] for n in os.listdir(model_dir) if '.ckpt' in n))


def test_keep_iter_prunes_old_iteration_checkpoints_not_epochs(model, tmp_path):
    model_dir = str(tmp_path / 'model_dump')
    for i, name in enumerate(['iter_1.ckpt', 'epoch_1.ckpt', 'iter_2.ckpt', 'iter_3.ckpt',
                              'iter_4.ckpt']):
        model.set(float(i))
        ckpt.save_checkpoint(model.saver, model.sess, model_dir, name, keep_iter=2)
    assert ckpt.list_checkpoints(model_dir) == ['epoch_1.ckpt', 'iter_3.ckpt', 'iter_4.ckpt']
    assert files_of(model_dir) == ['epoch_1', 'iter_3', 'iter_4']  # files removed too
    assert model.restore(ckpt.latest_checkpoint(model_dir)) == 4.0
    assert model.restore(os.path.join(model_dir, 'epoch_1.ckpt')) == 1.0
    # An epoch save prunes nothing more; the newest is never pruned, even when an older
    # name is saved again.
    model.set(5.0)
    ckpt.save_checkpoint(model.saver, model.sess, model_dir, 'epoch_2.ckpt', keep_iter=1)
    assert ckpt.list_checkpoints(model_dir) == ['epoch_1.ckpt', 'iter_4.ckpt', 'epoch_2.ckpt']
    model.set(6.0)
    ckpt.save_checkpoint(model.saver, model.sess, model_dir, 'iter_3.ckpt', keep_iter=1)
    assert ckpt.list_checkpoints(model_dir) == ['epoch_1.ckpt', 'epoch_2.ckpt', 'iter_3.ckpt']
    assert files_of(model_dir) == ['epoch_1', 'epoch_2', 'iter_3']
    assert model.restore(ckpt.latest_checkpoint(model_dir)) == 6.0


@pytest.mark.parametrize('keep', [None, 0])
def test_keep_iter_none_or_zero_keeps_all(keep, model, tmp_path):
    model_dir = str(tmp_path / 'model_dump')
    for n in range(1, 6):
        model.set(float(n))
        ckpt.save_checkpoint(model.saver, model.sess, model_dir, 'iter_%d.ckpt' % n,
                             keep_iter=keep)
    assert ckpt.list_checkpoints(model_dir) == ['iter_%d.ckpt' % n for n in range(1, 6)]


@pytest.mark.parametrize('crash', sorted(CRASHES))
def test_an_interrupted_save_prunes_nothing(crash, model, tmp_path, monkeypatch):
    model_dir = str(tmp_path / 'model_dump')
    for n in (1, 2):
        model.set(float(n))
        ckpt.save_checkpoint(model.saver, model.sess, model_dir, 'iter_%d.ckpt' % n,
                             keep_iter=2)
    with monkeypatch.context() as mp:
        CRASHES[crash](mp, model)
        with pytest.raises(Interrupted):
            ckpt.save_checkpoint(model.saver, model.sess, model_dir, 'iter_3.ckpt', keep_iter=2)
    assert ckpt.list_checkpoints(model_dir) == ['iter_1.ckpt', 'iter_2.ckpt']
    assert 'iter_1' in files_of(model_dir)
    assert model.restore(os.path.join(model_dir, 'iter_1.ckpt')) == 1.0


def test_keep_iter_checkpoints_config_key():
    from lighthead.config import ConfigError
    assert make_config().keep_iter_checkpoints == 3
    assert make_config(keep_iter_checkpoints=None).keep_iter_checkpoints is None
    with pytest.raises(ConfigError, match='keep_iter_checkpoints'):
        make_config(keep_iter_checkpoints=-1)


def test_list_and_latest(model, tmp_path):
    model_dir = str(tmp_path / 'model_dump')
    assert ckpt.list_checkpoints(model_dir) == [] and ckpt.latest_checkpoint(model_dir) is None
    for i, name in enumerate(['epoch_1.ckpt', 'iter_7.ckpt', 'epoch_2.ckpt']):
        model.save(model_dir, name, float(i))
    assert ckpt.list_checkpoints(model_dir) == ['epoch_1.ckpt', 'iter_7.ckpt', 'epoch_2.ckpt']
    assert ckpt.latest_checkpoint(model_dir) == os.path.join(model_dir, 'epoch_2.ckpt')
    assert ckpt.epoch_checkpoint(model_dir, 2) == os.path.join(model_dir, 'epoch_2.ckpt')

    # Saving an existing name again replaces it and makes it the newest.
    model.save(model_dir, 'epoch_1.ckpt', 9.0)
    assert ckpt.list_checkpoints(model_dir) == ['iter_7.ckpt', 'epoch_2.ckpt', 'epoch_1.ckpt']
    assert model.restore(ckpt.latest_checkpoint(model_dir)) == 9.0

    # Stale temporary files (a crashed save) are neither listed nor picked as latest.
    for stale in ('.tmp-epoch_3.ckpt.index', '.tmp-epoch_3.ckpt.data-00000-of-00001',
                  '.tmp-iter_9.ckpt.index', '.tmp-checkpoint'):
        with open(os.path.join(model_dir, stale), 'w') as f:
            f.write('partial')
    assert ckpt.list_checkpoints(model_dir) == ['iter_7.ckpt', 'epoch_2.ckpt', 'epoch_1.ckpt']
    assert tf.train.latest_checkpoint(model_dir) == os.path.join(model_dir, 'epoch_1.ckpt')

    # A checkpoint whose .index is gone (deleted by hand) is skipped.
    os.remove(os.path.join(model_dir, 'epoch_1.ckpt.index'))
    assert ckpt.list_checkpoints(model_dir) == ['iter_7.ckpt', 'epoch_2.ckpt']
    assert ckpt.latest_checkpoint(model_dir) == os.path.join(model_dir, 'epoch_2.ckpt')
    model.save(model_dir, 'epoch_3.ckpt', 4.0)
    assert not [n for n in os.listdir(model_dir) if n.startswith('.tmp-')]
    assert ckpt.list_checkpoints(model_dir) == ['iter_7.ckpt', 'epoch_2.ckpt', 'epoch_3.ckpt']


def test_restore_of_a_missing_checkpoint_names_it(model, tmp_path):
    prefix = str(tmp_path / 'epoch_4.ckpt')
    with pytest.raises(ckpt.CheckpointNotFoundError, match='epoch_4.ckpt') as info:
        model.restore(prefix)
    assert isinstance(info.value, FileNotFoundError)
    assert 'looked for %s.index' % prefix in str(info.value)


# ---------------------------------------------------------------------------------- schedule

def schedule_config(**kw):
    values = dict(basic_lr=0.01, warm_iter=6, warm_factor=1.0 / 3, max_epoch=4,
                  lr_steps=[[2, 1.0], [3, 0.1], [4, 0.01]])
    values.update(kw)
    return make_config(**values)


def test_warm_up_ramps_linearly_from_a_third():
    sched = Schedule(schedule_config(), num_towers=1, iters_per_epoch=10)
    lrs = [sched.lr(s) for s in range(8)]
    # The original: iteration i < warm_iter uses lr * (1/3 + (2/3) * i / warm_iter).
    expected = [0.01 * (1 / 3 + 2 / 3 * i / 6) for i in range(6)] + [0.01, 0.01]
    assert np.allclose(lrs, expected, rtol=1e-12)
    assert all(a < b for a, b in zip(lrs[:6], lrs[1:7]))


def test_epoch_boundaries_include_the_warm_up_in_epoch_0():
    sched = Schedule(schedule_config(), num_towers=1, iters_per_epoch=10)
    assert sched.total_steps == 6 + 4 * 10
    assert [sched.epoch_start(e) for e in range(5)] == [0, 16, 26, 36, 46]
    epochs = [sched.epoch_of(s) for s in range(sched.total_steps)]
    assert epochs == [0] * 16 + [1] * 10 + [2] * 10 + [3] * 10
    ends = [s for s in range(sched.total_steps) if sched.is_epoch_end(s)]
    assert ends == [15, 25, 35, 45]


def test_lr_steps_by_epoch():
    cfg = schedule_config()
    sched = Schedule(cfg, num_towers=1, iters_per_epoch=10)
    assert [lr_at_epoch(cfg, e) for e in range(5)] == pytest.approx([0.01, 0.01, 0.001, 1e-4, 1e-4])
    assert sched.lr(15) == pytest.approx(0.01) and sched.lr(16) == pytest.approx(0.01)
    assert sched.lr(25) == pytest.approx(0.01) and sched.lr(26) == pytest.approx(0.001)
    assert sched.lr(35) == pytest.approx(0.001) and sched.lr(36) == pytest.approx(1e-4)
    assert sched.lr(45) == pytest.approx(1e-4)


def test_lr_is_scaled_by_the_number_of_towers():
    cfg = schedule_config()
    one = Schedule(cfg, num_towers=1, iters_per_epoch=10)
    four = Schedule(cfg, num_towers=4, iters_per_epoch=10)
    for step in (0, 3, 6, 20, 30, 45):
        assert four.lr(step) == pytest.approx(4 * one.lr(step), rel=1e-12)


def test_schedule_without_warm_up_and_bad_epoch_length():
    sched = Schedule(schedule_config(warm_iter=0), num_towers=2, iters_per_epoch=3)
    assert sched.lr(0) == pytest.approx(0.02) and sched.epoch_start(1) == 3
    assert sched.is_epoch_end(2) and not sched.is_epoch_end(3)
    with pytest.raises(ValueError, match='iters_per_epoch'):
        Schedule(schedule_config(), num_towers=1, iters_per_epoch=0)


# ---------------------------------------------------------------------------- config overrides

@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.delenv('OUTPUT_DIR', raising=False)
    return make_config(exp_name='t', class_names=['background', 'a', 'b'], image_short_size=256,
                       image_max_size=320)


@pytest.mark.parametrize('item, key, value', [
    ('basic_lr=1e-3', ['basic_lr'], 1e-3),
    ('max_epoch=3', ['max_epoch'], 3),
    ('train_flip=False', ['train_flip'], False),
    ('weight=None', ['weight'], None),
    ('weight=none', ['weight'], 'none'),
    ('anchor_scales=[1, 2, 4]', ['anchor_scales'], [1, 2, 4]),
    ('lr_steps=[[1, 1.0], [2, 0.1]]', ['lr_steps'], [[1, 1.0], [2, 0.1]]),
    ("exp_name='quoted'", ['exp_name'], 'quoted'),
    ('exp_name=a=b', ['exp_name'], 'a=b'),
    ('train_source=/data/a b.json', ['train_source'], '/data/a b.json'),
    ('TRAIN.RPN_BATCHSIZE=-1', ['TRAIN', 'RPN_BATCHSIZE'], -1),
])
def test_override_values_are_literals(item, key, value):
    assert parse_override(item) == (key, value)


def test_overrides_set_nested_keys_and_keep_the_rest(cfg):
    apply_overrides(cfg, ['TRAIN.RPN_BATCHSIZE=128', 'TEST.NMS=0.3', 'basic_lr=0.02'])
    assert cfg.TRAIN.RPN_BATCHSIZE == 128 and isinstance(cfg.TRAIN.RPN_BATCHSIZE, int)
    assert cfg.TEST.NMS == 0.3 and cfg.basic_lr == 0.02
    assert cfg.TRAIN.RPN_POSITIVE_OVERLAP == 0.7 and cfg.TEST.MAX_PER_IMAGE == 100


@pytest.mark.parametrize('item', [
    'no_such_key=1', 'TRAIN.NO_SUCH_KEY=1', 'NOPE.RPN_BATCHSIZE=1', 'basic_lr.x=1',
    'model_dump_dir=/tmp/x', 'num_classes=3'])
def test_unknown_or_derived_keys_are_an_error(cfg, item):
    before = dict(cfg)
    with pytest.raises(KeyError, match='unknown config key'):
        apply_overrides(cfg, [item])
    assert cfg.basic_lr == before['basic_lr']


@pytest.mark.parametrize('item', ['basic_lr', '=3'])
def test_malformed_overrides_are_an_error(cfg, item):
    with pytest.raises(ValueError):
        apply_overrides(cfg, [item])


def test_make_config_rejects_unknown_keys_and_merges_nested():
    with pytest.raises(KeyError, match='no_such'):
        make_config(no_such=1)
    with pytest.raises(KeyError, match='TRAIN.NOPE'):
        make_config(TRAIN=dict(NOPE=1))
    c = make_config(TRAIN=dict(RPN_BATCHSIZE=64))
    assert c.TRAIN.RPN_BATCHSIZE == 64 and c.TRAIN.RPN_NMS_THRESH == 0.7


def test_derived_values_follow_the_overrides(cfg, tmp_path):
    out = str(tmp_path / 'run')
    apply_overrides(cfg, ['output_dir=' + out, "class_names=['background', 'x']",
                          'image_short_size=128', 'image_max_size=160'])
    assert cfg.model_dump_dir == os.path.join(out, 'model_dump')
    assert cfg.eval_dir == os.path.join(out, 'eval_dump')
    assert cfg.num_classes == 2
    assert (cfg.eval_image_short_size, cfg.eval_image_max_size) == (128, 160)
    # An explicit eval size stays, and no longer follows the training size.
    apply_overrides(cfg, ['eval_image_short_size=200', 'image_short_size=100'])
    assert cfg.eval_image_short_size == 200 and cfg.image_short_size == 100
    apply_overrides(cfg, ['image_short_size=90'])
    assert cfg.eval_image_short_size == 200 and cfg.eval_image_max_size == 160


def test_output_dir_from_the_environment_wins(cfg, tmp_path, monkeypatch):
    env = str(tmp_path / 'env_out')
    monkeypatch.setenv('OUTPUT_DIR', env)
    apply_overrides(cfg, ['output_dir=' + str(tmp_path / 'other')])
    assert cfg.output_dir == env and cfg.log_dir == os.path.join(env, 'log')
    assert make_config(exp_name='e').tb_dir == os.path.join(env, 'tb')
