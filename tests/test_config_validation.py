"""Config validation (lighthead.config.finalize / apply_overrides), the frozen config, the
eval-size rule, the schedule's lr_steps rule and the one im_info builder."""
import copy
import os
import pickle

import numpy as np
import pytest

import lighthead.config as config_module
from lighthead.config import (REPO_ROOT, SPECS, ConfigError, FrozenConfigError,
                              UnknownConfigKey, apply_overrides, base_config, finalize,
                              load_experiment, make_config, update_config)
from lighthead.config.checks import BACKBONE_MAX_FREEZE_AT, Node, check_value
from lighthead.data.transforms import load_test_image, make_im_info
from lighthead.train.schedule import check_lr_steps, lr_at_epoch

EXPERIMENTS = os.path.join(REPO_ROOT, 'experiments')
EXPERIMENT_NAMES = sorted(d for d in os.listdir(EXPERIMENTS)
                          if os.path.isfile(os.path.join(EXPERIMENTS, d, 'config.py')))


@pytest.fixture
def cfg(monkeypatch, tmp_path):
    monkeypatch.delenv('OUTPUT_DIR', raising=False)
    return make_config(exp_name='t', class_names=['background', 'a'],
                       output_dir=str(tmp_path / 'out'), image_short_size=256,
                       image_max_size=320)


# ------------------------------------------------------------------------------- overrides

@pytest.mark.parametrize('item, key, value, expected', [
    ('max_epoch=abc', 'max_epoch', "'abc'", 'an int >= 1'),
    ('basic_lr=abc', 'basic_lr', "'abc'", 'a number > 0'),
    ('snapshot_iters=abc', 'snapshot_iters', "'abc'", 'an int >= 0'),
    ('TRAIN=5', 'TRAIN', '5', 'a dict of TRAIN keys'),
    ('max_epoch=-1', 'max_epoch', '-1', 'an int >= 1'),
    ('max_epoch=2.5', 'max_epoch', '2.5', 'an int >= 1'),
    ('train_flip=1', 'train_flip', '1', 'True or False'),
    ('eval_rpn_only=yes', 'eval_rpn_only', "'yes'", 'True or False'),
    ('TRAIN.FG_FRACTION=1.5', 'TRAIN.FG_FRACTION', '1.5', 'a number in [0, 1]'),
    ('TEST.NMS=0', 'TEST.NMS', '0', 'a number in (0, 1]'),
    ('anchor_scales=4', 'anchor_scales', '4', 'a non-empty list'),
    ('anchor_scales=[]', 'anchor_scales', '[]', 'a non-empty list'),
    ('backbone=vgg16', 'backbone', "'vgg16'", "one of 'resnet_v1_101'"),
    ('head_init=xavier', 'head_init', "'xavier'", "one of 'normal', 'fan_in'"),
    ('head_norm=batch', 'head_norm', "'batch'", "None (no normalization) or one of 'group'"),
    ('clip_gradient_norm=0', 'clip_gradient_norm', '0', 'None (no clipping) or a number > 0'),
    ('exp_name=123', 'exp_name', '123', 'a non-empty string'),
    ('exp_name=None', 'exp_name', 'None', 'a non-empty string'),
    ('augment.brightness=1.0', 'augment.brightness', '1.0', 'a number in [0, 1)'),
    ('image_mean=[1, 2]', 'image_mean', '[1, 2]', 'a list of 3'),
])
def test_a_bad_override_names_the_override_key_value_and_type(cfg, item, key, value,
                                                               expected):
    before = copy.deepcopy(dict(cfg))
    with pytest.raises(ConfigError) as info:
        apply_overrides(cfg, [item])
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith("config override %r: %s: expected " % (item, key)), message
    assert expected in message and ('got %s' % value) in message, message
    assert dict(cfg) == before and cfg.frozen  # nothing applied


@pytest.mark.parametrize('item', ['no_such=1', 'TRAIN.NOPE=1', 'basic_lr.x=1', 'num_classes=3',
                                  'log_dir=/x', "TRAIN={'NOPE': 1}"])
def test_unknown_keys_stay_key_errors(cfg, item):
    with pytest.raises(KeyError, match='unknown config key') as info:
        apply_overrides(cfg, [item])
    assert isinstance(info.value, UnknownConfigKey) and isinstance(info.value, ConfigError)
    assert repr(item) in str(info.value)


def test_overrides_of_the_right_type_are_applied(cfg):
    apply_overrides(cfg, ['basic_lr=1', 'train_flip=False', 'anchor_scales=(1, 2)',
                          'weight=None', 'clip_gradient_norm=5', 'head_norm=group',
                          "TRAIN={'FG_THRESH': 0.6, 'BATCH_SIZE': 64}", 'TRAIN.BATCH_SIZE=-1',
                          'augment.scale_range=(0.8, 1.25)', 'train_short_sizes=[200, 256]'])
    assert cfg.basic_lr == 1 and cfg.train_flip is False
    assert isinstance(cfg.anchor_scales, list) and cfg.anchor_scales == [1, 2]
    assert cfg.weight is None and cfg.clip_gradient_norm == 5 and cfg.head_norm == 'group'
    # a dict for TRAIN merges into its keys; the later dotted override wins
    assert cfg.TRAIN.FG_THRESH == 0.6 and cfg.TRAIN.BATCH_SIZE == -1
    assert cfg.TRAIN.RPN_BATCHSIZE == 256
    assert cfg.augment.scale_range == [0.8, 1.25] and cfg.train_short_sizes == [200, 256]
    apply_overrides(cfg, ['clip_gradient_norm=None', 'train_short_sizes=None'])
    assert cfg.clip_gradient_norm is None and cfg.train_short_sizes is None


def test_an_override_breaking_a_rule_between_keys_names_them(cfg):
    with pytest.raises(ConfigError, match=r"after config override 'max_epoch=40': lr_steps: "
                                          r"expected the last epoch bound >= max_epoch = 40"):
        apply_overrides(cfg, ['max_epoch=40'])
    assert cfg.max_epoch == 30
    apply_overrides(cfg, ['max_epoch=40', 'lr_steps=[[30, 1.0], [40, 0.1]]'])
    assert cfg.max_epoch == 40 and cfg.lr_steps == [[30, 1.0], [40, 0.1]]
    # a schedule cut short is fine (quick runs: max_epoch=1)
    apply_overrides(cfg, ['max_epoch=1'])
    assert cfg.max_epoch == 1


def test_train_py_refuses_a_bad_override_before_building_anything(cfg):
    from lighthead.train import cli

    def network_cls():
        raise AssertionError('the network must not be built')

    with pytest.raises(SystemExit, match=r"lighthead: config override 'snapshot_iters=abc': "
                                         r"snapshot_iters: expected an int"):
        cli.main(cfg, network_cls, ['snapshot_iters=abc'])


def test_update_config_checks_python_values(cfg, tmp_path):
    update_config(cfg, output_dir=str(tmp_path / 'o'), TRAIN=dict(RPN_BATCHSIZE=64))
    assert cfg.log_dir == str(tmp_path / 'o' / 'log') and cfg.TRAIN.RPN_BATCHSIZE == 64
    with pytest.raises(ConfigError, match=r"config value max_epoch='3': max_epoch: expected"):
        update_config(cfg, max_epoch='3')
    with pytest.raises(KeyError, match='unknown config key'):
        update_config(cfg, no_such=1)


# -------------------------------------------------------------------------------- finalize

@pytest.mark.parametrize('values, message', [
    (dict(head_out_channels=500), r'head_out_channels: expected a multiple of psalign_group '
                                  r'\*\* 2 = 49 .*got 500'),
    (dict(psalign_group=5, head_out_channels=490), r'multiple of psalign_group \*\* 2 = 25'),
    (dict(lr_steps=[[25, 1.0], [19, 0.1], [30, 0.01]]), r'lr_steps: expected increasing'),
    (dict(lr_steps=[[19, 1.0], [25, 0.1]]), r'lr_steps: .*>= max_epoch = 30'),
    (dict(lr_steps=[[19, 1.0], [30, -0.1]]), r'lr_steps: expected a non-empty list of \['),
    (dict(lr_steps=[]), r'lr_steps: expected a non-empty list'),
    (dict(backbone='resnet50'), r"backbone: expected one of .*got 'resnet50'"),
    (dict(backbone='xception_star', freeze_at=5), r"freeze_at: expected an int in \[0, 4\] "
                                                  r"for backbone 'xception_star', got 5"),
    (dict(head_init='zeros'), r"head_init: expected one of 'normal', 'fan_in', got 'zeros'"),
    (dict(head_norm='layer'), r"head_norm: expected None .* or one of 'group'"),
    (dict(psalign_pool='min'), r"psalign_pool: expected one of 'max', 'avg'"),
    (dict(psalign_impl='cuda'), r"psalign_impl: expected None"),
    (dict(dataset_format='yolo'), r"dataset_format: expected one of 'coco', 'odgt', 'voc'"),
    (dict(image_short_size=0), r'image_short_size: expected an int >= 1, got 0'),
    (dict(eval_image_max_size=-5), r'eval_image_max_size: expected None .* or an int >= 1'),
    (dict(nr_image_per_epoch=0), r'nr_image_per_epoch: expected an int >= 1'),
    (dict(basic_lr=0.0), r'basic_lr: expected a number > 0, got 0.0'),
    (dict(basic_lr=float('nan')), r'basic_lr: expected a number > 0, got nan'),
    (dict(momentum=1.0), r'momentum: expected a number in \[0, 1\)'),
    (dict(bn_decay=1.5), r'bn_decay: expected a number in \[0, 1\]'),
    (dict(health_min_balanced_acc=2), r'health_min_balanced_acc: expected a number in \[0, 1\]'),
    (dict(class_names=[]), r'class_names: expected a non-empty list of distinct strings'),
    (dict(class_names=['background', 'a', 'a']), r"class_names: 'a' appears twice"),
    (dict(eval_tile_size=400, eval_tile_overlap=400), r'eval_tile_overlap: expected an int in '
                                                      r'\[0, eval_tile_size\) = \[0, 400\)'),
    (dict(TRAIN=dict(RPN_NEGATIVE_OVERLAP=0.8)), r'TRAIN.RPN_NEGATIVE_OVERLAP: expected <= '
                                                 r'TRAIN.RPN_POSITIVE_OVERLAP = 0.7, got 0.8'),
    (dict(TRAIN=dict(BG_THRESH_LO=0.6)), r'TRAIN.BG_THRESH_LO: expected <= TRAIN.BG_THRESH_HI'),
    (dict(TRAIN=dict(BG_THRESH_HI=0.6)), r'TRAIN.BG_THRESH_HI: expected <= TRAIN.FG_THRESH'),
    (dict(TRAIN=dict(FG_FRACTION=-0.1)), r'TRAIN.FG_FRACTION: expected a number in \[0, 1\]'),
    (dict(TRAIN=dict(BATCH_SIZE=0)), r'TRAIN.BATCH_SIZE: expected -1 or an int >= 1, got 0'),
    (dict(TRAIN=dict(BBOX_NORMALIZE_STDS=[0.1, 0.1, 0.2])),
     r'TRAIN.BBOX_NORMALIZE_STDS: expected a list of 4'),
    (dict(TEST=dict(RPN_POST_NMS_TOP_N=7000)), r'TEST.RPN_POST_NMS_TOP_N: expected <= '
                                               r'TEST.RPN_PRE_NMS_TOP_N = 6000 .*got 7000'),
    (dict(TEST=dict(SCORE_THRESH=1.5)), r'TEST.SCORE_THRESH: expected a number in \[0, 1\]'),
    (dict(TRAIN=5), r'TRAIN: expected a dict of TRAIN keys'),
    (dict(augment=dict(crop_fraction=0)), r'augment.crop_fraction: expected None .* \(0, 1\]'),
    (dict(augment=dict(scale_range=[1.2, 0.8])), r'augment.scale_range: expected None'),
    (dict(weight_name_map={'a': 1}), r'weight_name_map: expected a dict'),
    (dict(seed=-1), r'seed: expected an int in \[0, 4294967295\]'),
])
def test_finalize_refuses_wrong_values_naming_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        make_config(**values)


def test_finalize_accepts_the_defaults_and_every_default_fits_its_spec():
    c = make_config()
    assert c.frozen and c.num_classes == 1
    defaults = base_config()
    assert set(defaults) == set(SPECS)  # a new key needs a spec
    for key, value in defaults.items():
        assert check_value([key], value) == value, key
        if isinstance(SPECS[key], Node):
            assert set(value) == set(SPECS[key].specs), key


def test_the_known_backbones_are_the_registry():
    from lighthead.utils.tf_utils.basemodel import BACKBONES
    assert set(BACKBONE_MAX_FREEZE_AT) == set(BACKBONES)
    for name, module in BACKBONES.items():
        stages = getattr(module, 'STAGES', None) or getattr(module, 'BLOCKS', None) or \
            getattr(module, 'BLOCKS_101')
        assert BACKBONE_MAX_FREEZE_AT[name] == 1 + len(stages), name


def test_finalize_needs_a_config_object():
    with pytest.raises(TypeError, match='finalize'):
        finalize({'exp_name': 'x'})


# -------------------------------------------------------------------------------- frozen

def test_a_finalized_config_is_frozen_everywhere(cfg):
    with pytest.raises(FrozenConfigError, match='frozen.*cannot set max_epoch'):
        cfg.max_epoch = 3
    with pytest.raises(AttributeError, match='cannot set TRAIN.FG_THRESH'):
        cfg.TRAIN.FG_THRESH = 0.1
    with pytest.raises(ConfigError, match='cannot set basic_lr'):
        cfg['basic_lr'] = 0.1
    with pytest.raises(FrozenConfigError, match='cannot delete seed'):
        del cfg.seed
    with pytest.raises(FrozenConfigError):
        cfg.update(seed=4)
    with pytest.raises(FrozenConfigError):
        cfg.augment.pop('vflip')
    with pytest.raises(FrozenConfigError, match='cannot change the list'):
        cfg.anchor_scales.append(64)
    with pytest.raises(FrozenConfigError):
        cfg.lr_steps[0][1] = 2.0
    with pytest.raises(FrozenConfigError):
        cfg.setdefault('new_key', 1)
    assert cfg.max_epoch == 30 and cfg.TRAIN.FG_THRESH == 0.5 and cfg.seed == 3
    assert cfg.anchor_scales == [2, 4, 8, 16, 32] and 'new_key' not in cfg
    # attribute access of a missing key is still an AttributeError (getattr defaults work)
    assert getattr(cfg, 'no_such', 'd') == 'd'


def test_copies_are_editable_and_pickles_stay_frozen(cfg):
    editable = copy.deepcopy(cfg)
    editable.TEST.RPN_POST_NMS_TOP_N = 7
    editable.anchor_scales.append(64)
    assert not editable.frozen and cfg.TEST.RPN_POST_NMS_TOP_N == 1000
    assert cfg.anchor_scales == [2, 4, 8, 16, 32]
    finalize(editable)
    assert editable.frozen and editable.anchor_scales == [2, 4, 8, 16, 32, 64]
    restored = pickle.loads(pickle.dumps(cfg))
    assert restored == cfg and restored.frozen and restored.TRAIN.frozen
    with pytest.raises(FrozenConfigError):
        restored.seed = 1
    # it still knows its eval size follows the training size
    apply_overrides(restored, ['image_short_size=128'])
    assert restored.eval_image_short_size == 128


def test_overrides_change_a_frozen_config_in_place(cfg):
    train = cfg.TRAIN
    apply_overrides(cfg, ['TRAIN.FG_THRESH=0.6', 'seed=5'])
    assert cfg.frozen and cfg.seed == 5 and train is cfg.TRAIN and train.FG_THRESH == 0.6


# ------------------------------------------------------------------------ the eval-size rule

def test_eval_sizes_left_none_follow_the_training_size(cfg):
    assert (cfg.eval_image_short_size, cfg.eval_image_max_size) == (256, 320)
    apply_overrides(cfg, ['image_short_size=128', 'image_max_size=160'])
    assert (cfg.eval_image_short_size, cfg.eval_image_max_size) == (128, 160)
    # an explicit eval size stays, even equal to the training size
    apply_overrides(cfg, ['eval_image_short_size=128'])
    apply_overrides(cfg, ['image_short_size=100'])
    assert cfg.eval_image_short_size == 128 and cfg.eval_image_max_size == 160
    # None again: the training size again
    apply_overrides(cfg, ['eval_image_short_size=None'])
    assert cfg.eval_image_short_size == 100


def test_an_eval_size_set_in_the_config_file_stays():
    c = make_config(image_short_size=600, eval_image_short_size=800)
    apply_overrides(c, ['image_short_size=500', 'image_max_size=900'])
    assert (c.eval_image_short_size, c.eval_image_max_size) == (800, 900)


def test_output_dir_left_none_follows_the_experiment_name(monkeypatch):
    monkeypatch.delenv('OUTPUT_DIR', raising=False)
    c = make_config(exp_name='a')
    assert c.output_dir == os.path.join(REPO_ROOT, 'output', 'a')
    apply_overrides(c, ['exp_name=b'])
    assert c.log_dir == os.path.join(REPO_ROOT, 'output', 'b', 'log')


@pytest.mark.parametrize('name', EXPERIMENT_NAMES)
def test_every_shipped_experiment_passes_validation(name, output_dir):
    cfg, network_cls = load_experiment(os.path.join(EXPERIMENTS, name))
    assert cfg.frozen and cfg.exp_name == name and isinstance(network_cls, type)
    # their eval sizes are their training sizes, and follow a training-size override
    assert (cfg.eval_image_short_size, cfg.eval_image_max_size) == (cfg.image_short_size,
                                                                     cfg.image_max_size)
    cfg, _ = load_experiment(os.path.join(EXPERIMENTS, name),
                             ['image_short_size=128', 'image_max_size=160'])
    assert (cfg.eval_image_short_size, cfg.eval_image_max_size) == (128, 160)


def test_the_experiments_are_all_checked():
    assert {'quickstart', 'res101_coco', 'treecrowns', 'user', 'user_geonseoks'} <= set(
        EXPERIMENT_NAMES)


# ------------------------------------------------------------------------------ schedule

def test_the_schedule_lives_in_train_schedule():
    assert not hasattr(config_module, 'lr_at_epoch')
    c = make_config(basic_lr=0.01, max_epoch=3, lr_steps=[[1, 1.0], [3, 0.1]])
    assert [lr_at_epoch(c, e) for e in range(3)] == pytest.approx([0.01, 0.001, 0.001])
    check_lr_steps([[1, 1.0], [3, 0.1]], 3)
    check_lr_steps([[1, 1.0], [3, 0.1]], 1)
    with pytest.raises(ValueError, match='increasing'):
        check_lr_steps([[3, 1.0], [3, 0.1]], 3)
    with pytest.raises(ValueError, match='>= max_epoch = 4'):
        check_lr_steps([[1, 1.0], [3, 0.1]], 4)


# ------------------------------------------------------------------------------- im_info

def test_make_im_info_is_one_float32_row():
    info = make_im_info((600, 800), 1.5, (400, 533), num_boxes=7)
    assert info.shape == (1, 6) and info.dtype == np.float32
    assert info.tolist() == [[600.0, 800.0, 1.5, 400.0, 533.0, 7.0]]
    assert make_im_info([10, 20], 0.25, (40, 80)).tolist() == [[10, 20, 0.25, 40, 80, 0]]
    with pytest.raises(ValueError, match='resized_hw'):
        make_im_info((600, 800, 3), 1.0, (600, 800))
    with pytest.raises(ValueError, match='original_hw'):
        make_im_info((600, 800), 1.0, (600,))


def test_load_test_image_builds_its_im_info_with_make_im_info(tmp_path):
    import cv2
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, np.full((50, 80, 3), 127, np.uint8))
    data, info, raw = load_test_image(path, 100, 1000, [0.0, 0.0, 0.0])
    assert data.shape == (1, 100, 160, 3) and raw.shape == (50, 80, 3)
    assert info.dtype == np.float32
    assert np.array_equal(info, make_im_info((100, 160), 2.0, (50, 80)))
