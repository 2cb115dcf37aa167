"""Find, build on first use, and load the PSAlignPool op library; register its gradient.

Looks in ``<package>/ops/_build/tf-<version>/`` (where ``pip install`` and ``python -m
lighthead.ops.build`` put it), then in ``$XDG_CACHE_HOME/lighthead/ops/tf-<version>/`` (default
``~/.cache``). A library counts only if its ``build_info.json`` names the current sources. If
none does, it is compiled into the first writable of those folders, under a file lock so that
concurrent processes build it once; a failed build raises ``build.BuildError`` with the compiler
output. When TF is built with CUDA the GPU library (CPU + CUDA kernels) is loaded, else the CPU one.
"""
import fcntl
import json
import logging
import os

from lighthead.compat import IS_TF1, tf
from lighthead.ops import build

OP_NAME = 'LightheadPSAlignPool'
_ATTRS = ('group_size', 'sample_height', 'sample_width', 'spatial_scale', 'pool')
_loaded = {}


def _roots():
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return [build.DEFAULT_OUT, os.path.join(cache, 'lighthead', 'ops')]


def _want_cuda():
    return tf.test.is_built_with_cuda() and not IS_TF1


def _usable_library(root):
    """Path of the library to load from ``root``, or None if absent or built from other sources."""
    folder = build.build_dir(root)
    try:
        with open(os.path.join(folder, build.INFO_FILE)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    if info.get('sources') != build.sources_digest():
        return None
    gpu = os.path.join(folder, build.GPU_LIB)
    if _want_cuda():
        if os.path.exists(gpu):
            return gpu
        logging.getLogger(__name__).warning(
            'TensorFlow has CUDA but %s has no CUDA library (%s): PSAlignPool runs on the CPU',
            folder, info.get('gpu_skipped'))
    cpu = os.path.join(folder, build.CPU_LIB)
    return cpu if os.path.exists(cpu) else None


def _lock(root):
    """Open and exclusively lock the build lock file of ``root``; OSError if not writable."""
    os.makedirs(root, exist_ok=True)
    handle = open(os.path.join(root, '.lock-tf-' + build.tf_version()), 'w')
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _find_or_build():
    roots = _roots()
    for root in roots:
        path = _usable_library(root)
        if path:
            return path
    errors = []
    for root in roots:
        try:
            handle = _lock(root)
        except OSError as e:  # read-only install folder: try the next one
            errors.append('%s: %s' % (root, e))
            continue
        with handle:  # closing the file releases the lock
            path = _usable_library(root)  # another process may have built it meanwhile
            if path is None:
                logging.getLogger(__name__).warning(
                    'compiling the PSAlignPool op library into %s', build.build_dir(root))
                build.build(root, cuda='auto' if _want_cuda() else False)
                path = _usable_library(root)
            return path
    raise build.BuildError('no writable folder to build the op library in:\n' +
                           '\n'.join(errors))


def library():
    """The loaded op module (``lighthead_ps_align_pool``, ``..._grad``); loads it once."""
    if 'module' not in _loaded:
        path = _find_or_build()
        _loaded['module'] = tf.load_op_library(path)
        _loaded['path'] = path
    return _loaded['module']


def library_path():
    library()
    return _loaded['path']


def has_cuda_kernel():
    return os.path.basename(library_path()) == build.GPU_LIB


@tf.RegisterGradient(OP_NAME)
def _psalign_pool_grad(op, grad, _argmax_grad):
    """Gradient to the features only (none to the RoIs); the argmax output is not differentiable."""
    attrs = {name: op.get_attr(name) for name in _ATTRS}
    if isinstance(attrs['pool'], bytes):
        attrs['pool'] = attrs['pool'].decode()
    features_grad = library().lighthead_ps_align_pool_grad(
        op.inputs[0], op.inputs[1], op.outputs[1], grad, **attrs)
    return [features_grad, None]
