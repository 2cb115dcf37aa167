"""Atomic checkpoints in ``model_dump/``: ``epoch_N.ckpt`` and ``iter_N.ckpt``.

A checkpoint is written under a temporary prefix, its files are fsynced and renamed into place,
and only then is the ``checkpoint`` index rewritten (itself atomically). A crash at any moment
leaves the index pointing at the previous complete checkpoint.
"""
import glob
import os
import re

from lighthead.compat import tf

INDEX_NAME = 'checkpoint'
_TMP_PREFIX = '.tmp-'


def _fsync_file(path):
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_files(prefix):
    """The files that make up the checkpoint ``prefix`` (``.index``, ``.data-*``)."""
    return sorted(glob.glob(prefix + '.index') + glob.glob(prefix + '.data-*'))


def _write_index(model_dir, names):
    """Atomically rewrite the ``checkpoint`` index; the last name is the newest."""
    lines = ['model_checkpoint_path: "%s"' % names[-1]]
    lines += ['all_model_checkpoint_paths: "%s"' % n for n in names]
    tmp = os.path.join(model_dir, _TMP_PREFIX + INDEX_NAME)
    with open(tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(model_dir, INDEX_NAME))
    _fsync_dir(model_dir)


def list_checkpoints(model_dir):
    """Names in the index, oldest first, keeping only those whose files all exist."""
    index = os.path.join(model_dir, INDEX_NAME)
    if not os.path.exists(index):
        return []
    names = []
    with open(index) as f:
        for line in f:
            m = re.match(r'all_model_checkpoint_paths:\s*"(.*)"', line.strip())
            if m and m.group(1) not in names:
                names.append(m.group(1))
    return [n for n in names if os.path.exists(os.path.join(model_dir, n) + '.index')]


def latest_checkpoint(model_dir):
    """Full prefix of the newest complete checkpoint, or None."""
    names = list_checkpoints(model_dir)
    return os.path.join(model_dir, names[-1]) if names else None


def save_checkpoint(saver, sess, model_dir, name):
    """Save all of ``saver``'s variables as ``model_dir/name`` atomically; returns the prefix.

    ``name`` is e.g. ``'epoch_3.ckpt'``. An existing checkpoint of that name is replaced.
    Temporary files that a crashed save left (of any name) are removed first: one process
    writes a ``model_dir``.
    """
    os.makedirs(model_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(model_dir, _TMP_PREFIX + '*')):
        os.remove(stale)
    tmp_prefix = os.path.join(model_dir, _TMP_PREFIX + name)
    saver.save(sess, tmp_prefix, write_meta_graph=False, write_state=False)
    final_prefix = os.path.join(model_dir, name)
    for path in checkpoint_files(tmp_prefix):
        _fsync_file(path)
    # .data first and .index last: a prefix whose .index exists is complete.
    for path in sorted(checkpoint_files(tmp_prefix), key=lambda p: p.endswith('.index')):
        os.replace(path, final_prefix + path[len(tmp_prefix):])
    _fsync_dir(model_dir)
    names = [n for n in list_checkpoints(model_dir) if n != name] + [name]
    _write_index(model_dir, names)
    return final_prefix


def epoch_checkpoint(model_dir, epoch):
    """Prefix of ``epoch_N.ckpt`` (N = epochs completed, 1-based)."""
    return os.path.join(model_dir, 'epoch_%d.ckpt' % epoch)


def restore(sess, prefix, var_list=None):
    """Restore ``var_list`` (default: all global variables) from ``prefix``."""
    if not os.path.exists(prefix + '.index'):
        raise FileNotFoundError('checkpoint %s not found (no %s.index)' % (prefix, prefix))
    tf.train.Saver(var_list=var_list).restore(sess, prefix)
