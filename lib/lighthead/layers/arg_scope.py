"""``arg_scope`` / ``add_arg_scope``: default keyword arguments per layer function.

Same semantics as tf_slim's: a scope maps each decorated function to a dict of keyword
arguments; nested scopes copy the outer dict and update it; explicit keyword arguments of a
call override the scope. Passing the dict yielded by an earlier ``arg_scope`` re-enters
exactly that scope.
"""
import contextlib
import functools

_ARG_STACK = [{}]


def _key(func):
    return getattr(func, '_arg_scope_key', None)


def _current_scope():
    return _ARG_STACK[-1]


def add_arg_scope(func):
    """Decorator: ``func`` takes its default keyword arguments from the active ``arg_scope``."""
    key = (func.__module__, func.__qualname__)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        scoped = _current_scope().get(key)
        if scoped:
            merged = dict(scoped)
            merged.update(kwargs)
            kwargs = merged
        return func(*args, **kwargs)

    wrapper._arg_scope_key = key
    return wrapper


@contextlib.contextmanager
def arg_scope(list_ops_or_scope, **kwargs):
    """Set default keyword arguments for the decorated functions in ``list_ops_or_scope``.

    ``list_ops_or_scope`` is a list/tuple of functions decorated with ``add_arg_scope``, or a
    scope dict yielded by an earlier ``arg_scope`` (then ``kwargs`` must be empty). Yields the
    new scope dict.
    """
    if isinstance(list_ops_or_scope, dict):
        if kwargs:
            raise ValueError('arg_scope: kwargs are not allowed when re-entering a scope dict')
        new_scope = list_ops_or_scope
    else:
        if not isinstance(list_ops_or_scope, (list, tuple)):
            raise TypeError('arg_scope: expected a list/tuple of functions or a scope dict, '
                            'got %r' % (list_ops_or_scope,))
        new_scope = dict(_current_scope())
        for op in list_ops_or_scope:
            key = _key(op)
            if key is None:
                raise ValueError('%s is not decorated with @add_arg_scope' % (op,))
            merged = dict(new_scope.get(key, {}))
            merged.update(kwargs)
            new_scope[key] = merged
    _ARG_STACK.append(new_scope)
    try:
        yield new_scope
    finally:
        _ARG_STACK.pop()
