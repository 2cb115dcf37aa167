"""Experiment configuration: one base config, per-experiment overrides, safe CLI overrides.

An experiment's ``config.py`` calls :func:`make_config` with the values it changes and exposes
the result as ``config`` (and ``cfg``). Command-line ``KEY=VALUE`` pairs go through
:func:`apply_overrides`, which parses values with ``ast.literal_eval`` and refuses unknown keys.
Tools load an experiment folder with :func:`load_experiment`: its config (overrides applied)
and its ``network_desp.Network`` bound to that config.
"""
import ast
import copy
import importlib.util
import json
import os
import re
import sys

from easydict import EasyDict

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))

# BGR pixel means of the original (Caffe ImageNet means).
IMAGE_MEAN_BGR = (102.9801, 115.9465, 122.7717)


def base_config():
    """The defaults: zengarden's ps_roialign experiment, with SPEC's fixes."""
    c = EasyDict()
    c.exp_name = 'unnamed'
    c.output_dir = None  # None: <repo>/output/<exp_name>; env OUTPUT_DIR overrides
    c.backbone = 'xception_star'  # xception_star | xception_geonseoks | resnet_v1_101
    c.seed = 3

    # ---- data ----
    c.dataset_format = 'coco'  # coco | odgt | voc
    c.class_names = ['background']  # index 0 is background
    c.train_source = None   # COCO json / .odgt / VOC root
    c.train_root_folder = None  # image folder (COCO, odgt); VOC: unused
    c.train_split = 'trainval'  # VOC only
    c.eval_source = None
    c.eval_root_folder = None
    c.eval_split = 'test'  # VOC only
    c.image_mean = list(IMAGE_MEAN_BGR)
    c.image_short_size = 800
    c.image_max_size = 1333
    c.train_short_sizes = None  # multi-scale training: list of short sides, one picked per batch
    c.eval_image_short_size = None  # None: image_short_size
    c.eval_image_max_size = None
    c.eval_tile_size = 0  # >0: evaluate by sliding windows of this many original-image pixels
    c.eval_tile_overlap = 0  # pixels shared by neighbouring windows (lighthead.eval.tiling)
    # None, or {group name: regex searched in the image file name}: AP/AP50 per group (site)
    c.eval_groups = None
    c.eval_rpn_only = True  # also score the RPN proposals alone (class-agnostic AP)
    c.train_flip = True
    # Training augmentation beyond train_flip, all off (lighthead.data.batch.augment_settings)
    c.augment = EasyDict(vflip=False, rot90=False, brightness=0.0, contrast=0.0,
                         saturation=0.0, scale_range=None, crop_fraction=None)
    c.max_boxes_of_image = 100
    c.nr_dataflow = 2  # data worker processes
    c.prefetch_batches = 4
    c.skip_bad_records = False
    c.data_timeout = 120.0  # seconds without a batch before the run stops

    # ---- anchors / RPN ----
    c.anchor_base_size = 16
    c.anchor_scales = [2, 4, 8, 16, 32]
    c.anchor_ratios = [0.5, 1, 2]
    c.rpn_channels = 512
    c.rpn_sigma = 3.0
    c.rcnn_sigma = 1.0
    c.rcnn_box_loss_weight = 2.0

    # ---- light head ----
    c.head_feature = None  # backbone end point under the light head; None: the backbone's own
    c.head_kernel = 15
    c.head_mid_channels = 256
    c.head_out_channels = 490
    c.psalign_group = 7
    c.psalign_samples = 2
    c.psalign_pool = 'max'
    c.psalign_impl = None  # None: compiled kernel (env LIGHTHEAD_OPS=tf picks pure TF)
    c.fc_channels = 2048
    c.large_sep_conv_grad_mult = 3.0
    # Init of the large separable conv and ps_fc_1: 'normal' N(0, 0.01) (the original, for
    # ImageNet backbones) or 'fan_in' variance scaling (presets.from_scratch).
    c.head_init = 'normal'
    # Normalization in the head: None (the original) or 'group' (GroupNorm on the thin feature
    # map and ps_fc_1, for training from scratch with one image per tower).
    c.head_norm = None
    c.clip_gradient_norm = None  # None: no clipping (the original); a float clips the global norm

    # ---- training ----
    c.train_batch_per_gpu = 2
    c.test_batch_per_gpu = 1
    c.bn_training = False
    c.bn_decay = 0.997  # BN moving-average decay (the original's); presets.from_scratch: 0.95
    c.freeze_at = 2  # 0 nothing, 1 stem, 2 stem + first stage frozen (the original)
    c.basic_lr = 5e-4 * 2 * 1.25
    c.momentum = 0.9
    c.weight_decay = 1e-4
    c.nr_image_per_epoch = 80000
    c.max_epoch = 30
    c.lr_steps = [[19, 1.0], [25, 0.1], [30, 0.01]]  # [epoch bound, lr factor]: first bound > e
    c.warm_iter = 500
    c.warm_factor = 1.0 / 3
    c.snapshot_iters = 0  # 0: only end-of-epoch checkpoints
    c.log_interval = 20
    # Head-at-chance warning (lighthead.train.health): checked at this step and at the end of
    # training (0: off), over the last 50 steps' head accuracy and score spread.
    c.health_check_after = 300
    c.health_min_balanced_acc = 0.6
    c.health_min_score_std = 0.05
    c.weight = None  # pretrained backbone checkpoint (slim ckpt or .npz)
    c.weight_name_map = {}  # checkpoint prefix -> graph prefix

    c.TRAIN = EasyDict()
    c.TRAIN.RPN_POSITIVE_OVERLAP = 0.7
    c.TRAIN.RPN_NEGATIVE_OVERLAP = 0.3
    c.TRAIN.RPN_FG_FRACTION = 0.5
    c.TRAIN.RPN_BATCHSIZE = 256
    c.TRAIN.RPN_ALLOWED_BORDER = 0
    c.TRAIN.RPN_NMS_THRESH = 0.7
    c.TRAIN.RPN_PRE_NMS_TOP_N = 12000
    c.TRAIN.RPN_POST_NMS_TOP_N = 2000
    c.TRAIN.RPN_MIN_SIZE = 0
    c.TRAIN.IGNORE_IOA_THRESH = 0.5
    c.TRAIN.FG_THRESH = 0.5
    c.TRAIN.BG_THRESH_HI = 0.5
    c.TRAIN.BG_THRESH_LO = 0.0
    # RoIs per image drawn for the R-CNN loss (-1: all, the original; OHEM then selects) and
    # the largest fg share of a draw.
    c.TRAIN.BATCH_SIZE = -1
    c.TRAIN.FG_FRACTION = 0.25
    c.TRAIN.OHEM_PER_IMAGE = 256
    c.TRAIN.BBOX_NORMALIZE_STDS = [0.1, 0.1, 0.2, 0.2]

    c.TEST = EasyDict()
    c.TEST.RPN_NMS_THRESH = 0.7
    c.TEST.RPN_PRE_NMS_TOP_N = 6000
    c.TEST.RPN_POST_NMS_TOP_N = 1000
    c.TEST.RPN_MIN_SIZE = 0
    c.TEST.NMS = 0.5
    c.TEST.SCORE_THRESH = 0.0
    c.TEST.MAX_PER_IMAGE = 100
    c.TEST.VIS_THRESH = 0.3
    return c


def _merge(dst, src, path=''):
    for key, value in src.items():
        full = path + key
        if key not in dst:
            raise KeyError('unknown config key %r' % full)
        if isinstance(dst[key], dict) and isinstance(value, dict) and dst[key]:
            _merge(dst[key], value, full + '.')
        else:
            dst[key] = copy.deepcopy(value)


def make_config(**overrides):
    """Base config updated with ``overrides`` (nested dicts merge; unknown keys raise)."""
    c = base_config()
    _merge(c, overrides)
    return finalize(c)


def _check_eval_keys(c):
    """``eval_groups``: None or {name: regex}, each regex compiling; ``eval_rpn_only``: bool."""
    groups = c.eval_groups
    if groups is not None:
        if not isinstance(groups, dict):
            raise ValueError('eval_groups must be None or a dict {group name: regex on the '
                             'image file name}, got %r' % (groups,))
        for name, pattern in groups.items():
            if not isinstance(pattern, str):
                raise ValueError('eval_groups[%r] must be a regex string, got %r'
                                 % (name, pattern))
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError('eval_groups[%r]: %r is not a valid regular expression: %s'
                                 % (name, pattern, e))
    if not isinstance(c.eval_rpn_only, bool):
        raise ValueError('eval_rpn_only must be True or False, got %r' % (c.eval_rpn_only,))


def finalize(c):
    """Fill the derived values (num_classes, sizes, output folders) after any change."""
    _check_eval_keys(c)
    c.num_classes = len(c.class_names)
    if c.eval_image_short_size is None:
        c.eval_image_short_size = c.image_short_size
    if c.eval_image_max_size is None:
        c.eval_image_max_size = c.image_max_size
    env_out = os.environ.get('OUTPUT_DIR')
    if env_out:
        c.output_dir = env_out
    elif not c.output_dir:
        c.output_dir = os.path.join(REPO_ROOT, 'output', c.exp_name)
    c.output_dir = os.path.abspath(c.output_dir)
    c.model_dump_dir = os.path.join(c.output_dir, 'model_dump')
    c.eval_dir = os.path.join(c.output_dir, 'eval_dump')
    c.log_dir = os.path.join(c.output_dir, 'log')
    c.tb_dir = os.path.join(c.output_dir, 'tb')
    return c


_DERIVED = {'num_classes', 'model_dump_dir', 'eval_dir', 'log_dir', 'tb_dir'}
# (eval key, training key): an eval size equal to the training size follows its overrides.
_FOLLOWS = (('eval_image_short_size', 'image_short_size'),
            ('eval_image_max_size', 'image_max_size'))


def parse_override(text):
    """``'TRAIN.RPN_BATCHSIZE=128'`` -> ``(['TRAIN', 'RPN_BATCHSIZE'], 128)``.

    Values are Python literals; a bare word that is not a literal is taken as a string.
    """
    if '=' not in text:
        raise ValueError('config override %r is not KEY=VALUE' % text)
    key, raw = text.split('=', 1)
    key = key.strip()
    if not key:
        raise ValueError('config override %r has an empty key' % text)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.split('.'), value


def apply_overrides(c, items):
    """Apply ``KEY=VALUE`` strings to config ``c`` in place; unknown keys raise ``KeyError``.

    An eval image size equal to its training size (e.g. derived from it) follows an override
    of the training size unless the eval size is overridden too.
    """
    following = [e for e, src in _FOLLOWS if c[e] is None or c[e] == c[src]]
    overridden = set()
    for item in items:
        keys, value = parse_override(item)
        overridden.add(keys[0])
        node = c
        for depth, k in enumerate(keys):
            if not isinstance(node, dict) or k not in node or '.'.join(keys) in _DERIVED:
                raise KeyError('unknown config key %r in override %r' % ('.'.join(keys[:depth + 1]), item))
            if depth == len(keys) - 1:
                node[k] = value
            else:
                node = node[k]
    for key in following:
        if key not in overridden:
            c[key] = None
    return finalize(c)


def to_json(c):
    """The resolved config as JSON text."""
    return json.dumps(c, indent=2, sort_keys=True, default=str)


def lr_at_epoch(c, epoch):
    """Per-device learning rate of 0-based ``epoch`` (first ``lr_steps`` bound greater than it)."""
    for bound, factor in c.lr_steps:
        if epoch < bound:
            return c.basic_lr * factor
    return c.basic_lr * c.lr_steps[-1][1]


def _load_config_module(exp_dir):
    """The module ``<exp_dir>/config.py``, executed by file path (not put in ``sys.modules``).

    Raises ``IOError`` when the file does not exist.
    """
    path = os.path.join(os.path.abspath(exp_dir), 'config.py')
    if not os.path.isfile(path):
        raise IOError('no experiment config %s' % path)
    name = 'lighthead_experiment_%s' % os.path.basename(os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_experiment_config(exp_dir):
    """The ``config`` of ``<exp_dir>/config.py``, loaded by file path.

    Raises ``IOError`` when the file does not exist.
    """
    return _load_config_module(exp_dir).config


def load_experiment(path, overrides=()):
    """``(cfg, network_cls)`` of the experiment folder ``path``: the ``config`` of its
    ``config.py`` with the ``KEY=VALUE`` ``overrides`` applied (:func:`apply_overrides`), and
    the ``Network`` class of its ``network_desp.py``, bound to that same ``cfg``.

    This is how a tool builds an experiment's network: ``network_cls()`` (no arguments, the
    original contract), so that a ``network_desp.py`` that changes the network is honoured.
    Both files are loaded by file path, each call afresh (a new ``cfg`` object each time).
    ``network_desp.py`` runs with the loaded ``config.py`` module as ``sys.modules['config']``,
    so its ``from config import config`` (or ``cfg``, or any other name of that file) gets this
    experiment's objects; what ``sys.modules['config']`` held before is put back afterwards,
    and ``sys.path`` is not changed: ``network_desp.py`` may import ``config`` and installed
    packages, not other files of its folder.

    Raises ``IOError`` when ``config.py`` or ``network_desp.py`` is missing, ``ImportError``
    when ``network_desp.py`` defines no class ``Network``, and ``KeyError``/``ValueError`` for a
    bad override (as :func:`apply_overrides`).
    """
    exp_dir = os.path.abspath(path)
    desp_path = os.path.join(exp_dir, 'network_desp.py')
    config_module = _load_config_module(exp_dir)
    cfg = apply_overrides(config_module.config, list(overrides))
    if not os.path.isfile(desp_path):
        raise IOError('no experiment network %s' % desp_path)
    name = 'lighthead_experiment_network_desp_%s' % os.path.basename(exp_dir)
    spec = importlib.util.spec_from_file_location(name, desp_path)
    desp = importlib.util.module_from_spec(spec)
    missing = object()
    saved = sys.modules.get('config', missing)
    sys.modules['config'] = config_module
    try:
        spec.loader.exec_module(desp)
    finally:
        if saved is missing:
            sys.modules.pop('config', None)
        else:
            sys.modules['config'] = saved
    network_cls = getattr(desp, 'Network', None)
    if not isinstance(network_cls, type):
        raise ImportError('%s defines no class Network' % desp_path)
    return cfg, network_cls
