"""The config object: a dict whose keys are also attributes, frozen once finalized.

:class:`Config` reads like EasyDict (``cfg.TRAIN.FG_THRESH`` and ``cfg['TRAIN']['FG_THRESH']``;
nested dicts become Configs). :func:`lighthead.config.finalize` checks a config and freezes
it: afterwards setting or deleting a key or attribute, anywhere in it, raises
:class:`FrozenConfigError`, and its lists are :class:`FrozenList` (lists whose in-place changes
raise). Change a finalized config with :func:`lighthead.config.apply_overrides` or
:func:`lighthead.config.update_config` (checked, then finalized again).
``copy.deepcopy`` of a config gives an editable (not frozen) copy with plain lists: a variant
that nobody else holds; :func:`lighthead.config.finalize` checks and freezes it again.
A pickled config (e.g. sent to a data worker) stays frozen.
"""
import copy


class ConfigError(ValueError):
    """A config key or value that is wrong; the message names the key, the value and what was
    expected."""


class UnknownConfigKey(ConfigError, KeyError):
    """A key that the config does not have (also a ``KeyError``, as it always was)."""

    def __str__(self):  # not KeyError's repr-quoting
        return str(self.args[0]) if self.args else ''


class FrozenConfigError(ConfigError, AttributeError):
    """An attempt to change a finalized (frozen) config in place."""


def _frozen_error(what):
    return FrozenConfigError(
        'the config is frozen after finalize(): cannot %s; use lighthead.config.apply_overrides '
        'or update_config (or copy.deepcopy(cfg) for an editable copy)' % what)


class FrozenList(list):
    """A list of a frozen config: equal to (and an instance of) ``list``; changes raise."""

    def _refuse(self, *args, **kwargs):
        raise _frozen_error('change the list %r' % (list(self),))

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __reduce__(self):
        return FrozenList, (list(self),)

    def __copy__(self):
        return list(self)

    def __deepcopy__(self, memo):
        return [copy.deepcopy(v, memo) for v in self]


def _convert(value, path):
    """Nested dicts -> Config (named ``path``), inside lists and tuples too."""
    if isinstance(value, Config):
        if value._path != path:
            object.__setattr__(value, '_path', path)
        return value
    if isinstance(value, dict):
        node = Config(path=path)
        for k, v in value.items():
            node[k] = v
        return node
    if isinstance(value, list) and not isinstance(value, FrozenList):
        return [_convert(v, path) for v in value]
    if isinstance(value, tuple):
        return tuple(_convert(v, path) for v in value)
    return value


class Config(dict):
    """Dict with attribute access (see the module docstring). ``path``: the node's key prefix
    in messages (``'TRAIN.'`` for ``cfg.TRAIN``)."""

    def __init__(self, *args, **kwargs):
        path = kwargs.pop('path', '')
        dict.__init__(self)
        object.__setattr__(self, '_frozen', False)
        object.__setattr__(self, '_path', path)
        object.__setattr__(self, '_given', None)
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    # ---- attribute access
    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError('config has no key %r' % (self._path + name))

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]

    # ---- item access, refused when frozen
    def _check_mutable(self, what):
        if self._frozen:
            raise _frozen_error(what)

    def __setitem__(self, key, value):
        self._check_mutable('set %s' % (self._path + str(key)))
        dict.__setitem__(self, key, _convert(value, self._path + str(key) + '.'))

    def __delitem__(self, key):
        self._check_mutable('delete %s' % (self._path + str(key)))
        dict.__delitem__(self, key)

    def update(self, *args, **kwargs):
        self._check_mutable('update %s' % (self._path or 'the config'))
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key, *default):
        self._check_mutable('pop %s' % (self._path + str(key)))
        return dict.pop(self, key, *default)

    def popitem(self):
        self._check_mutable('popitem from %s' % (self._path or 'the config'))
        return dict.popitem(self)

    def clear(self):
        self._check_mutable('clear %s' % (self._path or 'the config'))
        dict.clear(self)

    def __ior__(self, other):
        self.update(other)
        return self

    # ---- frozen state
    @property
    def frozen(self):
        """True once :func:`lighthead.config.finalize` has checked and frozen this config."""
        return self._frozen

    def _set_frozen(self, frozen):
        """Freeze (lists become :class:`FrozenList`) or thaw (plain lists) the whole tree."""
        object.__setattr__(self, '_frozen', False)
        for key, value in list(dict.items(self)):
            dict.__setitem__(self, key, _set_frozen_value(value, frozen))
        object.__setattr__(self, '_frozen', frozen)

    # ---- copies and pickles
    def __copy__(self):
        return copy.deepcopy(self)

    def __deepcopy__(self, memo):
        node = Config(path=self._path)
        for key, value in dict.items(self):
            node[key] = copy.deepcopy(value, memo)
        return node

    def __reduce__(self):
        return _rebuild, (dict(self), self._path, self._frozen, self._given)

    def __repr__(self):
        return 'Config(%s)' % dict.__repr__(self)


def _set_frozen_value(value, frozen):
    if isinstance(value, Config):
        value._set_frozen(frozen)
        return value
    if isinstance(value, list):
        items = [_set_frozen_value(v, frozen) for v in value]
        return FrozenList(items) if frozen else items
    if isinstance(value, tuple):
        return tuple(_set_frozen_value(v, frozen) for v in value)
    return value


def _rebuild(items, path, frozen, given):
    node = Config(path=path)
    for key, value in items.items():
        dict.__setitem__(node, key, value)
    object.__setattr__(node, '_given', given)
    object.__setattr__(node, '_frozen', frozen)
    return node


def plain(value):
    """Deep copy of a config value as plain dicts and lists."""
    if isinstance(value, dict):
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return copy.deepcopy(value)
