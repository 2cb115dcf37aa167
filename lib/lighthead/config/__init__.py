"""Experiment configuration: one base config, per-experiment overrides, safe CLI overrides.

An experiment's ``config.py`` calls :func:`make_config` with the values it changes and exposes
the result as ``config`` (and ``cfg``). Command-line ``KEY=VALUE`` pairs go through
:func:`apply_overrides`, which parses values with ``ast.literal_eval``, refuses unknown keys
and checks every value against the type and range of its key before anything is built.
Tools load an experiment folder with :func:`load_experiment`: its config (overrides applied)
and its ``network_desp.Network`` bound to that config.

Every config goes through :func:`finalize`: each key is checked against its spec
(:mod:`lighthead.config.checks`: the type of its default, its range, the rules between keys),
the keys whose None stands for another value are resolved (:data:`RESOLVED`), the derived
values are filled (:data:`DERIVED`), and the config is frozen (:mod:`lighthead.config.node`:
setting a key afterwards raises). Any wrong key or value raises :class:`ConfigError` (a
``ValueError``; an unknown key raises :class:`UnknownConfigKey`, also a ``KeyError``), with a
message that names the key, the value and what was expected. A finalized config is changed
only through :func:`apply_overrides` or :func:`update_config`, which check the new values and
finalize it again, in place (the config is left unchanged when they raise).

The learning-rate schedule lives in :mod:`lighthead.train.schedule` (``lr_at_epoch``).
"""
import ast
import copy
import importlib.util
import json
import os
import sys

from lighthead.config.checks import SPECS, Node, check_value, check_values, spec_of
from lighthead.config.node import (Config, ConfigError, FrozenConfigError, UnknownConfigKey,
                                   plain)

__all__ = ['Config', 'ConfigError', 'DERIVED', 'FrozenConfigError', 'IMAGE_MEAN_BGR',
           'REPO_ROOT', 'RESOLVED', 'SPECS', 'UnknownConfigKey', 'apply_overrides',
           'base_config', 'finalize', 'load_experiment', 'load_experiment_config',
           'make_config', 'parse_override', 'to_json', 'update_config']

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))

# BGR pixel means of the original (Caffe ImageNet means).
IMAGE_MEAN_BGR = (102.9801, 115.9465, 122.7717)


def base_config():
    """The defaults: zengarden's ps_roialign experiment, with SPEC's fixes."""
    c = Config()
    c.exp_name = 'unnamed'
    c.output_dir = None  # None: <repo>/output/<exp_name>; env OUTPUT_DIR overrides
    c.backbone = 'xception_star'  # xception_star | xception_geonseoks | resnet_v1_101
    c.seed = 3

    # ---- data ----
    c.dataset_format = 'coco'  # a format of lighthead.datasets.registry (built in: coco, odgt, voc)
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
    # Evaluation size: None (the default) is "the same as training": finalize() resolves it to
    # image_short_size / image_max_size, and again after every override, so that it follows an
    # override of the training size. An explicit value stays as given (see RESOLVED).
    c.eval_image_short_size = None
    c.eval_image_max_size = None
    c.eval_tile_size = 0  # >0: evaluate by sliding windows of this many original-image pixels
    c.eval_tile_overlap = 0  # pixels shared by neighbouring windows (lighthead.eval.tiling)
    # None, or {group name: regex searched in the image file name}: AP/AP50 per group (site)
    c.eval_groups = None
    c.eval_rpn_only = True  # also score the RPN proposals alone (class-agnostic AP)
    c.train_flip = True
    # Training augmentation beyond train_flip, all off (lighthead.data.batch.augment_settings)
    c.augment = Config(vflip=False, rot90=False, brightness=0.0, contrast=0.0,
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
    c.keep_iter_checkpoints = 3  # newest iter_N.ckpt kept (epoch_N.ckpt all); None or 0: all
    c.log_interval = 20
    # Head-at-chance warning (lighthead.train.health): checked at this step and at the end of
    # training (0: off), over the last 50 steps' head accuracy and score spread.
    c.health_check_after = 300
    c.health_min_balanced_acc = 0.6
    c.health_min_score_std = 0.05
    c.weight = None  # pretrained backbone checkpoint (slim ckpt or .npz)
    c.weight_name_map = {}  # checkpoint prefix -> graph prefix

    c.TRAIN = Config()
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

    c.TEST = Config()
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
            raise UnknownConfigKey('unknown config key %r' % full)
        if isinstance(dst[key], dict) and isinstance(value, dict) and dst[key]:
            _merge(dst[key], value, full + '.')
        else:
            dst[key] = copy.deepcopy(value)


def make_config(**overrides):
    """Base config updated with ``overrides`` (nested dicts merge; unknown keys raise
    :class:`UnknownConfigKey`), then :func:`finalize`\\ d: checked and frozen."""
    c = base_config()
    _merge(c, overrides)
    return finalize(c)


# Values computed by finalize() from the others; never set by hand or by an override.
DERIVED = ('num_classes', 'model_dump_dir', 'eval_dir', 'log_dir', 'tb_dir')

# Keys whose None stands for another value, resolved by finalize() (None -> what it means).
# The config keeps the value it was given (None or explicit) and resolves it again whenever it
# is finalized again (after apply_overrides / update_config): an eval size left None follows
# an override of the training size; an explicit one stays.
RESOLVED = {
    'eval_image_short_size': 'image_short_size',
    'eval_image_max_size': 'image_max_size',
    'output_dir': '<repo>/output/<exp_name>; the environment variable OUTPUT_DIR wins',
}


def _resolve(values):
    """``(resolved, given)``: ``values`` (a whole config, plain dicts, nothing derived)
    checked, with :data:`RESOLVED` and :data:`DERIVED` filled in; ``given`` holds the
    unresolved values of the :data:`RESOLVED` keys. Raises :class:`ConfigError`."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise UnknownConfigKey('unknown config key %r' % unknown[0])
    c = check_values(values)
    given = dict((key, c[key]) for key in RESOLVED)
    c['num_classes'] = len(c['class_names'])
    # None: the same size as in training.
    if c['eval_image_short_size'] is None:
        c['eval_image_short_size'] = c['image_short_size']
    if c['eval_image_max_size'] is None:
        c['eval_image_max_size'] = c['image_max_size']
    env_out = os.environ.get('OUTPUT_DIR')
    if env_out:
        c['output_dir'] = env_out
    elif not c['output_dir']:
        c['output_dir'] = os.path.join(REPO_ROOT, 'output', c['exp_name'])
    c['output_dir'] = os.path.abspath(c['output_dir'])
    c['model_dump_dir'] = os.path.join(c['output_dir'], 'model_dump')
    c['eval_dir'] = os.path.join(c['output_dir'], 'eval_dump')
    c['log_dir'] = os.path.join(c['output_dir'], 'log')
    c['tb_dir'] = os.path.join(c['output_dir'], 'tb')
    return c, given


def _inputs(c):
    """The values ``c`` was made from, as plain dicts: no derived keys, and the
    :data:`RESOLVED` keys as given (None where they were left to finalize)."""
    values = plain(c)
    for key in DERIVED:
        values.pop(key, None)
    given = c._given if isinstance(c, Config) else None
    if given:
        values.update(copy.deepcopy(given))
    return values


def _store(node, values):
    """Put ``values`` into the thawed Config ``node`` in place (nested Configs kept)."""
    for key in list(node):
        if key not in values:
            del node[key]
    for key, value in values.items():
        old = dict.get(node, key)
        if isinstance(old, Config) and isinstance(value, dict) and value:
            _store(old, value)
        else:
            node[key] = value


def _commit(c, resolved, given):
    c._set_frozen(False)
    _store(c, resolved)
    object.__setattr__(c, '_given', given)
    c._set_frozen(True)
    return c


def finalize(c):
    """Check, resolve and freeze the :class:`Config` ``c`` in place; returns it.

    Every key is checked against its spec (:mod:`lighthead.config.checks`; raises
    :class:`ConfigError` naming the key, the value and what was expected), the keys of
    :data:`RESOLVED` left None get their value (``eval_image_short_size`` /
    ``eval_image_max_size``: the training ``image_short_size`` / ``image_max_size``;
    ``output_dir``: ``<repo>/output/<exp_name>``, and ``$OUTPUT_DIR`` when set), the
    :data:`DERIVED` values are filled (``num_classes`` and the output folders), and ``c`` is
    frozen. Finalizing a finalized config resolves it again from the values it was given."""
    if not isinstance(c, Config):
        raise TypeError('finalize: expected a lighthead.config.Config (base_config() or '
                        'make_config()), got %s' % type(c).__name__)
    resolved, given = _resolve(_inputs(c))
    return _commit(c, resolved, given)


def parse_override(text):
    """``'TRAIN.RPN_BATCHSIZE=128'`` -> ``(['TRAIN', 'RPN_BATCHSIZE'], 128)``.

    Values are Python literals; a bare word that is not a literal is taken as a string.
    Raises :class:`ConfigError` for text that is not ``KEY=VALUE``.
    """
    if '=' not in text:
        raise ConfigError('config override %r is not KEY=VALUE' % text)
    key, raw = text.split('=', 1)
    key = key.strip()
    if not key:
        raise ConfigError('config override %r has an empty key' % text)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.split('.'), value


def _set_checked(values, keys, value):
    """Check ``value`` for the key path ``keys`` and set it in the plain ``values``; a dict
    for ``TRAIN``, ``TEST`` or ``augment`` is merged into their current keys."""
    for depth in range(len(keys)):
        if spec_of(keys[:depth + 1]) is None:
            raise UnknownConfigKey('unknown config key %r' % '.'.join(keys[:depth + 1]))
    node = values
    for key in keys[:-1]:
        node = node[key]
    if isinstance(spec_of(keys), Node) and isinstance(value, dict):
        merged = dict(node[keys[-1]])
        merged.update(value)
        value = merged
    node[keys[-1]] = check_value(keys, value)


def _reraise(error, prefix):
    """``error`` again, of the same type, its message prefixed."""
    raise type(error)(prefix + (error.args[0] if error.args else str(error)))


def _apply(c, pairs, labels):
    """Set the checked ``pairs`` (key path, value) on the inputs of ``c``, resolve, commit.
    ``labels``: how each pair is named in errors."""
    values = _inputs(c)
    for (keys, value), label in zip(pairs, labels):
        try:
            _set_checked(values, keys, value)
        except UnknownConfigKey as e:
            raise UnknownConfigKey('%s in %s' % (e.args[0], label))
        except ConfigError as e:
            _reraise(e, '%s: ' % label)
    try:
        resolved, given = _resolve(values)
    except ConfigError as e:
        _reraise(e, 'after %s: ' % ', '.join(labels))
    return _commit(c, resolved, given)


def apply_overrides(c, items):
    """Apply ``KEY=VALUE`` strings (:func:`parse_override`) to the config ``c`` in place and
    finalize it again; returns ``c``.

    Each value is checked against the type of its key's default and its range before anything
    is set (:mod:`lighthead.config.checks`): ``max_epoch=abc``, ``basic_lr=abc``,
    ``TRAIN=5`` or ``max_epoch=-1`` raise :class:`ConfigError` naming the override, the key,
    the value and the expected type. An int is fine for a float key (``basic_lr=1``); a bool
    key takes only ``True``/``False``; ``KEY=None`` is for keys whose default is None.
    ``TRAIN={...}`` merges into the current ``TRAIN`` keys. Unknown and derived keys raise
    :class:`UnknownConfigKey` (a ``KeyError``). On any error ``c`` is left as it was.

    An eval image size left None (the default: "the same as training") follows an override
    of the training size; an explicit eval size (given in ``config.py`` or overridden) stays.
    """
    items = list(items)
    pairs = [parse_override(item) for item in items]
    return _apply(c, pairs, ['config override %r' % item for item in items])


def update_config(c, **values):
    """Like :func:`apply_overrides` with Python values instead of text:
    ``update_config(cfg, output_dir='/x', TRAIN=dict(FG_THRESH=0.4))``; returns ``c``."""
    keys = sorted(values)
    return _apply(c, [([k], values[k]) for k in keys],
                  ['config value %s=%r' % (k, values[k]) for k in keys])


def to_json(c):
    """The resolved config as JSON text."""
    return json.dumps(c, indent=2, sort_keys=True, default=str)


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
    when ``network_desp.py`` defines no class ``Network``, and :class:`ConfigError` (a
    ``ValueError``; :class:`UnknownConfigKey` is also a ``KeyError``) for a bad config or
    override (as :func:`apply_overrides`).
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
