"""What each config key accepts (:data:`SPECS`) and the rules between keys (check_relations).

Each key of :func:`lighthead.config.base_config` has a spec here, of the type of its default:

- a bool key takes only ``True``/``False`` (not 0/1, not ``'yes'``);
- an int key takes an int (not a float, not a bool);
- a number key takes an int or a float (``basic_lr=1`` is fine; kept as given);
- a string key takes a string (``exp_name=123`` is refused: quote it, ``exp_name='123'``);
- a list key takes a list (or tuple, stored as a list) of items of its kind;
- ``TRAIN``, ``TEST`` and ``augment`` take a dict of their own keys (merged into the current
  values; ``TRAIN=5`` is refused);
- a key whose default is None takes None or what its spec names; what None means is part of
  the spec (e.g. ``eval_image_short_size``: None is "the training ``image_short_size``").

Specs also bound the value (positive sizes, fractions in [0, 1], known backbone names, ...).
:func:`check_values` applies them to a whole (unresolved) config as plain dicts and raises
:class:`~lighthead.config.node.ConfigError` naming the key, the value and what was expected.
"""
import numbers
import re

from lighthead.config.node import ConfigError, UnknownConfigKey

# The backbones of lighthead.utils.tf_utils.basemodel.BACKBONES (kept equal by a test, so
# that the config need not import TF) and the largest freeze_at of each (1 + its stages).
BACKBONE_MAX_FREEZE_AT = {'xception_star': 4, 'xception_geonseoks': 4, 'resnet_v1_101': 5}
DATASET_FORMATS = ('coco', 'odgt', 'voc')
HEAD_INITS = ('normal', 'fan_in')
HEAD_NORMS = ('group',)  # or None
PSALIGN_POOLS = ('max', 'avg')  # lighthead.ops.POOLS
PSALIGN_IMPLS = ('kernel', 'tf')  # lighthead.ops.IMPLEMENTATIONS (or None)


class Bad(Exception):
    """A value that fails its spec: ``expected`` says what was wanted; ``message``, when given,
    is the whole explanation instead."""

    def __init__(self, expected, message=None):
        Exception.__init__(self, expected)
        self.expected = expected
        self.message = message


def describe(key, value, expected):
    return '%s: expected %s, got %r (%s)' % (key, expected, value, type(value).__name__)


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _bound_text(lo, hi, lo_open, hi_open):
    if lo is not None and hi is not None:
        return 'in %s%r, %r%s' % ('(' if lo_open else '[', lo, hi, ')' if hi_open else ']')
    if lo is not None:
        return '%s %r' % ('>' if lo_open else '>=', lo)
    if hi is not None:
        return '%s %r' % ('<' if hi_open else '<=', hi)
    return ''


def _in_bounds(v, lo, hi, lo_open, hi_open):
    if lo is not None and (v <= lo if lo_open else v < lo):
        return False
    if hi is not None and (v >= hi if hi_open else v > hi):
        return False
    return True


class Spec(object):
    expected = 'a value'

    def check(self, value):
        """``value`` if it fits (lists converted from tuples), else raises :class:`Bad`."""
        raise NotImplementedError


class Bool(Spec):
    expected = 'True or False'

    def check(self, value):
        if not isinstance(value, bool):
            raise Bad(self.expected)
        return value


class Int(Spec):
    def __init__(self, lo=None, hi=None, also=()):
        self.lo, self.hi, self.also = lo, hi, tuple(also)
        text = ' '.join(t for t in ('an int', _bound_text(lo, hi, False, False)) if t)
        self.expected = ' or '.join([repr(a) for a in self.also] + [text])

    def check(self, value):
        if not _is_int(value):
            raise Bad(self.expected)
        if value in self.also:
            return int(value)
        if not _in_bounds(value, self.lo, self.hi, False, False):
            raise Bad(self.expected)
        return int(value)


class Number(Spec):
    def __init__(self, lo=None, hi=None, lo_open=False, hi_open=False):
        self.bounds = (lo, hi, lo_open, hi_open)
        text = _bound_text(lo, hi, lo_open, hi_open)
        self.expected = 'a number' + (' ' + text if text else '')

    def check(self, value):
        if not _is_number(value) or value != value or not _in_bounds(value, *self.bounds):
            raise Bad(self.expected)
        return value


def positive_int():
    return Int(lo=1)


def non_negative_int():
    return Int(lo=0)


def positive():
    return Number(lo=0, lo_open=True)


def non_negative():
    return Number(lo=0)


def fraction():
    return Number(0, 1)


def threshold():
    """An IoU threshold for NMS: (0, 1]."""
    return Number(0, 1, lo_open=True)


class Str(Spec):
    def __init__(self, choices=None, allow_empty=False):
        self.choices = tuple(choices) if choices else None
        self.allow_empty = allow_empty
        if self.choices:
            self.expected = 'one of %s' % ', '.join(repr(c) for c in self.choices)
        else:
            self.expected = 'a string' if allow_empty else 'a non-empty string'

    def check(self, value):
        if not isinstance(value, str):
            if self.choices is None and _is_number(value):
                raise Bad(self.expected + " (quote a number to make it a string: KEY='%s')"
                          % (value,))
            raise Bad(self.expected)
        if self.choices is not None and value not in self.choices:
            raise Bad(self.expected)
        if not self.allow_empty and not value:
            raise Bad(self.expected)
        return value


class Optional(Spec):
    """None (with ``meaning``) or ``spec``."""

    def __init__(self, spec, meaning):
        self.spec = spec
        self.expected = 'None (%s) or %s' % (meaning, spec.expected)

    def check(self, value):
        if value is None:
            return None
        try:
            return self.spec.check(value)
        except Bad as e:
            raise Bad(self.expected, e.message)


class ListOf(Spec):
    def __init__(self, item, length=None, min_len=1, what=None):
        self.item, self.length, self.min_len = item, length, min_len
        if what:
            self.expected = what
        elif length is not None:
            self.expected = 'a list of %d, each %s' % (length, item.expected)
        else:
            self.expected = '%s list, each %s' % ('a non-empty' if min_len else 'a',
                                                  item.expected)

    def check(self, value):
        if not isinstance(value, (list, tuple)):
            raise Bad(self.expected)
        if self.length is not None and len(value) != self.length:
            raise Bad(self.expected)
        if len(value) < (self.min_len or 0):
            raise Bad(self.expected)
        out = []
        for v in value:
            try:
                out.append(self.item.check(v))
            except Bad:
                raise Bad(self.expected)
        return out


class Node(Spec):
    """A dict of known keys, each with its spec (``TRAIN``, ``TEST``, ``augment``)."""

    def __init__(self, name, specs):
        self.specs = specs
        self.expected = ('a dict of %s keys ({KEY: value}; or set one key: %s.KEY=VALUE)'
                         % (name, name))


class Custom(Spec):
    def __init__(self, fn, expected):
        self.fn, self.expected = fn, expected

    def check(self, value):
        return self.fn(value, self.expected)


def _eval_groups(groups, expected):
    if groups is None:
        return None
    if not isinstance(groups, dict):
        raise Bad(expected, 'eval_groups must be None or a dict {group name: regex on the image '
                            'file name}, got %r' % (groups,))
    for name, pattern in groups.items():
        if not isinstance(pattern, str):
            raise Bad(expected, 'eval_groups[%r] must be a regex string, got %r'
                                % (name, pattern))
        try:
            re.compile(pattern)
        except re.error as e:
            raise Bad(expected, 'eval_groups[%r]: %r is not a valid regular expression: %s'
                                % (name, pattern, e))
    return dict(groups)


def _str_map(value, expected):
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Bad(expected)
    return dict(value)


def _lr_step(value, expected):
    if (isinstance(value, (list, tuple)) and len(value) == 2 and _is_int(value[0])
            and value[0] >= 1 and _is_number(value[1]) and value[1] > 0):
        return [int(value[0]), value[1]]
    raise Bad(expected)


def _scale_range(value, expected):
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(_is_number(v) for v in value) and 0 < value[0] <= value[1]):
        return list(value)
    raise Bad(expected)


def _dataset_format(value, expected):
    """A name registered in lighthead.datasets.registry (built in: DATASET_FORMATS)."""
    import lighthead.datasets  # noqa: F401 (registers the built-in formats)
    from lighthead.datasets.registry import format_names
    names = format_names()
    if not isinstance(value, str) or value not in names:
        raise Bad('one of %s (registered dataset formats: lighthead.datasets.registry)'
                  % ', '.join(repr(n) for n in names))
    return value


def _class_names(value, expected):
    names = ListOf(Str(), min_len=1, what=expected).check(value)
    seen = set()
    for name in names:
        if name in seen:
            raise Bad(expected, 'class_names: %r appears twice in %r' % (name, names))
        seen.add(name)
    return names


AUGMENT = {
    'vflip': Bool(),
    'rot90': Bool(),
    'brightness': Number(0, 1, hi_open=True),
    'contrast': Number(0, 1, hi_open=True),
    'saturation': Number(0, 1, hi_open=True),
    'scale_range': Optional(Custom(_scale_range, '[lo, hi] with 0 < lo <= hi'), 'no scale jitter'),
    'crop_fraction': Optional(Number(0, 1, lo_open=True), 'no crop'),
}

TRAIN = {
    'RPN_POSITIVE_OVERLAP': fraction(),
    'RPN_NEGATIVE_OVERLAP': fraction(),
    'RPN_FG_FRACTION': fraction(),
    'RPN_BATCHSIZE': positive_int(),
    'RPN_ALLOWED_BORDER': Number(),
    'RPN_NMS_THRESH': threshold(),
    'RPN_PRE_NMS_TOP_N': positive_int(),
    'RPN_POST_NMS_TOP_N': positive_int(),
    'RPN_MIN_SIZE': non_negative(),
    'IGNORE_IOA_THRESH': fraction(),
    'FG_THRESH': fraction(),
    'BG_THRESH_HI': fraction(),
    'BG_THRESH_LO': fraction(),
    'BATCH_SIZE': Int(lo=1, also=(-1,)),
    'FG_FRACTION': fraction(),
    'OHEM_PER_IMAGE': positive_int(),
    'BBOX_NORMALIZE_STDS': ListOf(positive(), length=4),
}

TEST = {
    'RPN_NMS_THRESH': threshold(),
    'RPN_PRE_NMS_TOP_N': positive_int(),
    'RPN_POST_NMS_TOP_N': positive_int(),
    'RPN_MIN_SIZE': non_negative(),
    'NMS': threshold(),
    'SCORE_THRESH': fraction(),
    'MAX_PER_IMAGE': positive_int(),
    'VIS_THRESH': fraction(),
}

_PATH = Optional(Str(), 'not set')

SPECS = {
    'exp_name': Str(),
    'output_dir': Optional(Str(), '<repo>/output/<exp_name>; env OUTPUT_DIR wins'),
    'backbone': Str(sorted(BACKBONE_MAX_FREEZE_AT)),
    'seed': Int(0, 2 ** 32 - 1),
    # ---- data
    'dataset_format': Custom(_dataset_format, 'a registered dataset format '
                                              '(lighthead.datasets.registry)'),
    'class_names': Custom(_class_names, 'a non-empty list of distinct strings, index 0 the '
                                        'background'),
    'train_source': _PATH,
    'train_root_folder': _PATH,
    'train_split': Str(),
    'eval_source': _PATH,
    'eval_root_folder': _PATH,
    'eval_split': Str(),
    'image_mean': ListOf(Number(), length=3),
    'image_short_size': positive_int(),
    'image_max_size': positive_int(),
    'train_short_sizes': Optional(ListOf(positive_int()), 'image_short_size only'),
    'eval_image_short_size': Optional(positive_int(), 'the same as image_short_size'),
    'eval_image_max_size': Optional(positive_int(), 'the same as image_max_size'),
    'eval_tile_size': non_negative_int(),
    'eval_tile_overlap': non_negative_int(),
    'eval_groups': Custom(_eval_groups, 'None or a dict {group name: regex}'),
    'eval_rpn_only': Bool(),
    'train_flip': Bool(),
    'augment': Node('augment', AUGMENT),
    'max_boxes_of_image': positive_int(),
    'nr_dataflow': non_negative_int(),
    'prefetch_batches': positive_int(),
    'skip_bad_records': Bool(),
    'data_timeout': positive(),
    # ---- anchors / RPN
    'anchor_base_size': positive_int(),
    'anchor_scales': ListOf(positive()),
    'anchor_ratios': ListOf(positive()),
    'rpn_channels': positive_int(),
    'rpn_sigma': positive(),
    'rcnn_sigma': positive(),
    'rcnn_box_loss_weight': non_negative(),
    # ---- light head
    'head_feature': Optional(Str(), "the backbone's own head feature"),
    'head_kernel': positive_int(),
    'head_mid_channels': positive_int(),
    'head_out_channels': positive_int(),
    'psalign_group': positive_int(),
    'psalign_samples': positive_int(),
    'psalign_pool': Str(PSALIGN_POOLS),
    'psalign_impl': Optional(Str(PSALIGN_IMPLS), 'env LIGHTHEAD_OPS, else kernel'),
    'fc_channels': positive_int(),
    'large_sep_conv_grad_mult': non_negative(),
    'head_init': Str(HEAD_INITS),
    'head_norm': Optional(Str(HEAD_NORMS), 'no normalization'),
    'clip_gradient_norm': Optional(positive(), 'no clipping'),
    # ---- training
    'train_batch_per_gpu': positive_int(),
    'test_batch_per_gpu': positive_int(),
    'bn_training': Bool(),
    'bn_decay': fraction(),
    'freeze_at': non_negative_int(),
    'basic_lr': positive(),
    'momentum': Number(0, 1, hi_open=True),
    'weight_decay': non_negative(),
    'nr_image_per_epoch': positive_int(),
    'max_epoch': positive_int(),
    'lr_steps': ListOf(Custom(_lr_step, '[epoch bound int >= 1, lr factor > 0]'),
                       what='a non-empty list of [epoch bound int >= 1, lr factor > 0]'),
    'warm_iter': non_negative_int(),
    'warm_factor': Number(0, 1, lo_open=True),
    'snapshot_iters': non_negative_int(),
    'keep_iter_checkpoints': Optional(non_negative_int(), 'keep all; 0 too'),
    'log_interval': positive_int(),
    'health_check_after': non_negative_int(),
    'health_min_balanced_acc': fraction(),
    'health_min_score_std': non_negative(),
    'weight': Optional(Str(), 'no pretrained weights'),
    'weight_name_map': Custom(_str_map, 'a dict {checkpoint prefix: graph prefix} of strings'),
    'TRAIN': Node('TRAIN', TRAIN),
    'TEST': Node('TEST', TEST),
}


def spec_of(keys):
    """The spec of the key path ``keys`` (a list), or None for an unknown key."""
    specs, spec = SPECS, None
    for key in keys:
        if specs is None or key not in specs:
            return None
        spec = specs[key]
        specs = spec.specs if isinstance(spec, Node) else None
    return spec


def check_value(keys, value):
    """``value`` checked against the spec of the key path ``keys`` (a list; a dict value of
    ``TRAIN``, ``TEST`` or ``augment`` must hold all their keys). Returns the value (lists for
    tuples); raises :class:`ConfigError` naming the key, the value and what was expected, and
    :class:`UnknownConfigKey` for a key without a spec."""
    name = '.'.join(keys)
    spec = spec_of(keys)
    if spec is None:
        raise UnknownConfigKey('unknown config key %r' % name)
    if isinstance(spec, Node):
        if not isinstance(value, dict):
            raise ConfigError(describe(name, value, spec.expected))
        out = {}
        for sub, sub_value in value.items():
            out[sub] = check_value(list(keys) + [sub], sub_value)
        missing = sorted(set(spec.specs) - set(value))
        if missing:
            raise ConfigError('%s: missing keys %s' % (name, ', '.join(missing)))
        return out
    try:
        return spec.check(value)
    except Bad as e:
        raise ConfigError(e.message or describe(name, value, e.expected))


def check_values(values):
    """Every key of ``values`` (a whole config, plain dicts, before :func:`resolve`) checked
    against its spec, then :func:`check_relations`. Returns the checked copy."""
    out = {}
    for key, value in values.items():
        out[key] = check_value([key], value)
    missing = sorted(set(SPECS) - set(values))
    if missing:
        raise ConfigError('config: missing keys %s' % ', '.join(missing))
    check_relations(out)
    return out


def _require(ok, message):
    if not ok:
        raise ConfigError(message)


def check_relations(v):
    """The rules between keys of the checked values ``v``."""
    from lighthead.train.schedule import check_lr_steps
    group = v['psalign_group']
    _require(v['head_out_channels'] % (group * group) == 0,
             'head_out_channels: expected a multiple of psalign_group ** 2 = %d (one channel '
             'group per PSAlign cell), got %r' % (group * group, v['head_out_channels']))
    top = BACKBONE_MAX_FREEZE_AT[v['backbone']]
    _require(v['freeze_at'] <= top,
             'freeze_at: expected an int in [0, %d] for backbone %r, got %r'
             % (top, v['backbone'], v['freeze_at']))
    try:
        check_lr_steps(v['lr_steps'], v['max_epoch'])
    except ValueError as e:
        raise ConfigError(str(e))
    if v['eval_tile_size'] > 0:
        _require(v['eval_tile_overlap'] < v['eval_tile_size'],
                 'eval_tile_overlap: expected an int in [0, eval_tile_size) = [0, %d), got %r'
                 % (v['eval_tile_size'], v['eval_tile_overlap']))
    t = v['TRAIN']
    _require(t['RPN_NEGATIVE_OVERLAP'] <= t['RPN_POSITIVE_OVERLAP'],
             'TRAIN.RPN_NEGATIVE_OVERLAP: expected <= TRAIN.RPN_POSITIVE_OVERLAP = %r, got %r'
             % (t['RPN_POSITIVE_OVERLAP'], t['RPN_NEGATIVE_OVERLAP']))
    _require(t['BG_THRESH_LO'] <= t['BG_THRESH_HI'],
             'TRAIN.BG_THRESH_LO: expected <= TRAIN.BG_THRESH_HI = %r, got %r'
             % (t['BG_THRESH_HI'], t['BG_THRESH_LO']))
    _require(t['BG_THRESH_HI'] <= t['FG_THRESH'],
             'TRAIN.BG_THRESH_HI: expected <= TRAIN.FG_THRESH = %r (an RoI cannot be both fg '
             'and bg), got %r' % (t['FG_THRESH'], t['BG_THRESH_HI']))
    for mode in ('TRAIN', 'TEST'):
        node = v[mode]
        _require(node['RPN_POST_NMS_TOP_N'] <= node['RPN_PRE_NMS_TOP_N'],
                 '%s.RPN_POST_NMS_TOP_N: expected <= %s.RPN_PRE_NMS_TOP_N = %r (NMS keeps at '
                 'most what enters it), got %r' % (mode, mode, node['RPN_PRE_NMS_TOP_N'],
                                                    node['RPN_POST_NMS_TOP_N']))
