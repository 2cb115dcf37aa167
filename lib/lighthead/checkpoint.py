"""Checkpoints: atomic saves in ``model_dump/``, finding one, checking it fits a graph, restoring.

Saving: a checkpoint (``epoch_N.ckpt``, ``iter_N.ckpt``) is written under a temporary prefix,
its files are fsynced and renamed into place, and only then is the ``checkpoint`` index
rewritten (itself atomically). A crash at any moment leaves the index pointing at the previous
complete checkpoint. With ``keep_iter`` only the newest iteration checkpoints stay: the older
ones leave the index in that same rewrite and their files are removed after it; epoch
checkpoints always stay. One process writes a ``model_dump`` (the run lock,
:mod:`lighthead.train.run_lock`).

Finding: :func:`resolve_checkpoint` turns what a user passes (a prefix, a folder with a
``checkpoint`` index, an output folder holding ``model_dump/``, or a model_dump folder and an
epoch) into a prefix, or raises :class:`CheckpointNotFoundError` (one message style: what was
not found, what was looked for, how to fix it).

Checking: :func:`check_compatible` compares the checkpoint's variables with the graph's before
a restore and raises :class:`CheckpointMismatchError` when shapes differ or graph variables are
missing (a checkpoint of another experiment, backbone or class count); :func:`restore` does
both.

Starting a training run: :func:`plan_start` decides once between resuming from the newest
checkpoint, loading pretrained weights and starting from scratch; the trainer executes the
:class:`StartPlan`.
"""
import collections
import glob
import os
import re

from lighthead.compat import tf

INDEX_NAME = 'checkpoint'
MODEL_DUMP = 'model_dump'
_TMP_PREFIX = '.tmp-'
_SHOWN = 5  # differing variables named in a CheckpointMismatchError
_USAGE = ('Pass a checkpoint prefix (.../model_dump/epoch_N.ckpt), a folder holding a '
          '`checkpoint` index (its newest checkpoint), or an output folder holding model_dump/.')

RESUME, PRETRAINED, SCRATCH = 'resume', 'pretrained', 'scratch'


class CheckpointNotFoundError(FileNotFoundError):
    """No checkpoint (or pretrained weights) where one was asked for. The message is one line:
    what was not found, what was looked for, and how to fix it."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the graph it is restored into (shapes differ or graph variables
    are missing), or cannot be read. The message is one line.

    ``differences``: list of ``(name, checkpoint_shape, graph_shape)``, ``checkpoint_shape``
    None for a graph variable missing from the checkpoint (empty for an unreadable one).
    ``class_counts``: ``(checkpoint, graph)`` numbers of classes when only the class-dependent
    layers differ, else None.
    """

    def __init__(self, message, differences=(), class_counts=None):
        super(CheckpointMismatchError, self).__init__(message)
        self.differences = list(differences)
        self.class_counts = class_counts


StartPlan = collections.namedtuple('StartPlan', 'action path note')
StartPlan.__doc__ = """How a training run starts, from :func:`plan_start`.

``action``: ``RESUME`` (restore the checkpoint prefix ``path``, including step and optimizer
state), ``PRETRAINED`` (initialise, then load the pretrained weights ``path``) or ``SCRATCH``
(initialise only; ``path`` None). ``note``: a line to tell the user (e.g. ``-c`` found nothing
to resume), or None."""


# ------------------------------------------------------------------------------ atomic saving

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
    """The files that make up the checkpoint ``prefix`` (``.index``, ``.data-*``), sorted."""
    return sorted(glob.glob(prefix + '.index') + glob.glob(prefix + '.data-*'))


def _write_index(model_dir, names):
    """Atomically rewrite the ``checkpoint`` index; the last name is the newest. No names:
    the index is removed."""
    if not names:
        index = os.path.join(model_dir, INDEX_NAME)
        if os.path.exists(index):
            os.remove(index)
            _fsync_dir(model_dir)
        return
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
    """Names (``epoch_3.ckpt``) in ``model_dir``'s ``checkpoint`` index, oldest first, keeping
    only those whose ``.index`` file exists. [] when there is no index."""
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
    """Full prefix of the newest complete checkpoint in ``model_dir``'s index, or None."""
    names = list_checkpoints(model_dir)
    return os.path.join(model_dir, names[-1]) if names else None


_ITER_NAME = re.compile(r'iter_\d+\.ckpt$')


def pruned(names, keep_iter):
    """The names (oldest first, the last the newest) that ``keep_iter`` drops: all but the
    newest ``keep_iter`` iteration checkpoints (``iter_N.ckpt``), never the newest name nor
    an epoch checkpoint. ``keep_iter`` None or 0: none."""
    if not keep_iter:
        return []
    iters = [n for n in names if _ITER_NAME.match(n)]
    return [n for n in iters[:-int(keep_iter)] if n != names[-1]]


def save_checkpoint(saver, sess, model_dir, name, keep_iter=None):
    """Save all of ``saver``'s variables as ``model_dir/name`` atomically; returns the prefix.

    ``name`` is e.g. ``'epoch_3.ckpt'``. An existing checkpoint of that name is replaced.
    Temporary files that a crashed save left (of any name) are removed first: one process
    writes a ``model_dir`` (the run lock).

    ``keep_iter``: None or 0 keeps every checkpoint; N keeps the newest N iteration
    checkpoints (``iter_N.ckpt``, in the order they were saved) and every epoch checkpoint.
    The older ones are pruned only once the new checkpoint is complete: they leave the index
    in the same atomic rewrite that adds it, then their files are removed.
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
    drop = pruned(names, keep_iter)
    _write_index(model_dir, [n for n in names if n not in drop])
    for old in drop:
        for path in checkpoint_files(os.path.join(model_dir, old)):
            os.remove(path)
    return final_prefix


def drop_from_index(model_dir, name):
    """Take ``name`` out of ``model_dir``'s index (atomically; its files stay), so that
    :func:`latest_checkpoint` and a resume no longer find it. Returns the new newest prefix,
    or None."""
    names = list_checkpoints(model_dir)
    if name in names:
        _write_index(model_dir, [n for n in names if n != name])
    return latest_checkpoint(model_dir)


def epoch_checkpoint(model_dir, epoch):
    """Prefix ``model_dir/epoch_N.ckpt`` (N = epochs completed, 1-based); not checked."""
    return os.path.join(model_dir, 'epoch_%d.ckpt' % epoch)


# ------------------------------------------------------------------------------------ finding

def _loose_checkpoints(folder):
    """Names of the complete checkpoints in ``folder`` (``*.index`` files), index or not."""
    if not os.path.isdir(folder):
        return []
    return sorted(n[:-len('.index')] for n in os.listdir(folder)
                  if n.endswith('.index') and not n.startswith(_TMP_PREFIX))


def _there(folder):
    """' Checkpoints in F: a, b.' (those with an index entry first), or ''."""
    names = list_checkpoints(folder)
    names += [n for n in _loose_checkpoints(folder) if n not in names]
    return ' Checkpoints in %s: %s.' % (folder, ', '.join(names)) if names else ''


def resolve_checkpoint(path, epoch=None):
    """The checkpoint prefix that ``path`` names.

    Args:
      path: a checkpoint prefix (``.../epoch_3.ckpt``; its ``.index`` or ``.data-*`` file
        name is accepted too), a folder holding a ``checkpoint`` index (its newest complete
        checkpoint), or an output folder holding ``model_dump/`` (the newest there). With
        ``epoch``: the model_dump folder.
      epoch: None, or N to take ``path/epoch_N.ckpt`` (what ``test.py -se N`` evaluates).

    Returns:
      The prefix (``.../epoch_3.ckpt``); its ``.index`` file exists.

    Raises:
      CheckpointNotFoundError: nothing complete there; the one-line message names ``path``,
        what was looked for, the checkpoints that do exist nearby, and how to fix it.
    """
    path = str(path)
    if epoch is not None:
        prefix = epoch_checkpoint(path, epoch)
        if os.path.exists(prefix + '.index'):
            return prefix
        raise CheckpointNotFoundError(
            'checkpoint %s not found: looked for %s.index.%s Evaluate an epoch that was saved '
            '(-se N), or train until epoch %d.' % (
                prefix, os.path.basename(prefix), _there(path) or
                ' No checkpoints in %s.' % path, epoch))
    m = re.match(r'(.+?)\.(index|data-\d+-of-\d+)$', path)
    if m and not os.path.isdir(path) and os.path.exists(m.group(1) + '.index'):
        return m.group(1)
    if os.path.isdir(path):
        folders = [path]
        if os.path.isdir(os.path.join(path, MODEL_DUMP)):
            folders.append(os.path.join(path, MODEL_DUMP))
        for folder in folders:
            prefix = latest_checkpoint(folder)
            if prefix is not None:
                return prefix
        loose = ''.join(_there(f) for f in folders)
        raise CheckpointNotFoundError(
            'no checkpoint in folder %s: looked for a `%s` index naming a complete checkpoint '
            'in %s.%s %s' % (path, INDEX_NAME, ' and '.join(folders),
                             loose + ' Pass one of those as FOLDER/NAME.' if loose else '',
                             _USAGE))
    if path.endswith(os.sep) or (os.sep in path and not os.path.isdir(os.path.dirname(path))):
        missing = path if path.endswith(os.sep) else os.path.dirname(path)
        raise CheckpointNotFoundError(
            'checkpoint %s not found: looked for the folder %s, which does not exist. %s'
            % (path, missing, _USAGE))
    if os.path.exists(path + '.index'):
        return path
    raise CheckpointNotFoundError(
        'checkpoint %s not found: looked for %s.index.%s %s'
        % (path, path, _there(os.path.dirname(path) or '.'), _USAGE))


def _weights_exist(path):
    return os.path.exists(path) or os.path.exists(path + '.index')


def plan_start(model_dump_dir, resume=False, weights=None, default_weights=None):
    """Decide how a training run starts; the one place that decision is made.

    Args:
      model_dump_dir: the experiment's ``model_dump`` folder.
      resume: True (``train.py -c``): resume from its newest complete checkpoint if there is
        one (the weights are then ignored); else start anew, with a note saying so.
      weights: ``--weights``: a path (TF checkpoint prefix or ``.npz``), ``'none'`` (any case:
        from scratch), or None (use ``default_weights``).
      default_weights: the config's ``weight`` (None or '': from scratch).

    Returns:
      A :class:`StartPlan`.

    Raises:
      CheckpointNotFoundError: the chosen pretrained weights do not exist (neither ``PATH``
        nor ``PATH.index``).
    """
    note = None
    if resume:
        prefix = latest_checkpoint(model_dump_dir)
        if prefix is not None:
            return StartPlan(RESUME, prefix, None)
        note = '-c given but no checkpoint in %s; starting a new run' % model_dump_dir
    if weights is not None:
        path = None if str(weights).lower() == 'none' else str(weights)
    else:
        path = default_weights or None
    if path is None:
        return StartPlan(SCRATCH, None, note)
    if not _weights_exist(path):
        raise CheckpointNotFoundError(
            'pretrained weights %s not found: looked for %s and %s.index. Put the checkpoint '
            'there, pass --weights PATH, or train from scratch with --weights none (then set '
            'bn_training=True and freeze_at=0).' % (path, path, path))
    return StartPlan(PRETRAINED, path, note)


# ----------------------------------------------------------------------- checking, restoring

def _graph_shapes(var_list):
    """name -> shape list of ``var_list`` (variables, or a Saver-style dict name -> variable)."""
    items = var_list.items() if isinstance(var_list, dict) else \
        ((v.op.name, v) for v in var_list)
    return collections.OrderedDict(
        (name, [int(d) if d is not None else None for d in v.get_shape().as_list()])
        for name, v in items)


def _class_counts(differences):
    """``(checkpoint, graph)`` class counts when every difference is a class-dependent layer,
    else None. Such a layer keeps its shape but the last dimension: ``C`` (classifier) or
    ``4 C`` (box regressor); it is recognised by both kinds differing consistently, or by its
    name (``cls``, ``class``, ``box``) when only one kind differs."""
    pairs = set()
    named = boxes = True
    for name, ckpt_shape, graph_shape in differences:
        if (ckpt_shape is None or not graph_shape or len(ckpt_shape) != len(graph_shape) or
                ckpt_shape[:-1] != graph_shape[:-1]):
            return None
        pairs.add((ckpt_shape[-1], graph_shape[-1]))
        lower = name.lower()
        boxes = boxes and 'box' in lower
        named = named and ('cls' in lower or 'class' in lower or 'box' in lower)
    if not pairs:
        return None
    n, m = min(p[0] for p in pairs), min(p[1] for p in pairs)
    if n == m or not pairs <= {(n, m), (4 * n, 4 * m)}:
        return None
    if len(pairs) == 2:
        return n, m
    if not named:
        return None
    if boxes:
        return (n // 4, m // 4) if n % 4 == 0 and m % 4 == 0 else None
    return n, m


def check_compatible(prefix, var_list=None, experiment=None):
    """Check that the checkpoint ``prefix`` can be restored into ``var_list``.

    Args:
      prefix: a checkpoint prefix whose ``.index`` exists.
      var_list: variables (or a dict name -> variable, as ``tf.train.Saver`` takes); default
        the global variables of the default graph.
      experiment: the experiment's name, for the message (None: "this graph").

    Returns:
      None. Checkpoint variables the graph does not use (optimizer slots) are fine.

    Raises:
      CheckpointMismatchError: a graph variable is missing from the checkpoint or has another
        shape there; its one-line message names the checkpoint and the experiment, lists up to
        five such variables with both shapes, and says what that usually means (another
        experiment or backbone, or another number of classes when only the class-dependent
        layers differ). Also raised when the checkpoint cannot be read.
    """
    graph = _graph_shapes(tf.global_variables() if var_list is None else var_list)
    target = "experiment '%s'" % experiment if experiment else 'this graph'
    try:
        stored = dict((name, list(shape)) for name, shape in tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as e:
        first = str(getattr(e, 'message', None) or e).strip().splitlines()
        raise CheckpointMismatchError(
            'checkpoint %s cannot be read (%s): it is not a complete TensorFlow checkpoint. '
            'Pass another one, or save it again.' % (prefix, first[0] if first else type(e)))
    differences = []
    for name, shape in graph.items():
        if name not in stored:
            differences.append((name, None, shape))
        elif stored[name] != shape:
            differences.append((name, stored[name], shape))
    if not differences:
        return
    # Shape differences first: they say most about what the checkpoint is.
    differences.sort(key=lambda d: d[1] is None)
    shown = []
    for name, ckpt_shape, graph_shape in differences[:_SHOWN]:
        if ckpt_shape is None:
            shown.append('%s %s: not in the checkpoint' % (name, graph_shape))
        else:
            shown.append('%s: checkpoint %s, graph %s' % (name, ckpt_shape, graph_shape))
    if len(differences) > _SHOWN:
        shown.append('and %d more' % (len(differences) - _SHOWN))
    counts = _class_counts(differences)
    if counts is not None:
        meaning = ('Only the class-dependent layers differ: the checkpoint was trained for %d '
                   'classes, %s has %d (background included). Use a checkpoint trained with '
                   "this experiment's class_names, or set class_names to the checkpoint's."
                   % (counts[0], target, counts[1]))
    else:
        meaning = ('This usually means the checkpoint belongs to another experiment or '
                   'backbone (or another config of the network): pass a checkpoint of %s '
                   '(its output model_dump/).' % target)
    missing = sum(1 for d in differences if d[1] is None)
    raise CheckpointMismatchError(
        'checkpoint %s does not fit %s: %d of its %d variables differ (%d with another shape, '
        '%d missing from the checkpoint): %s. %s' % (
            prefix, target, len(differences), len(graph), len(differences) - missing, missing,
            '; '.join(shown), meaning),
        differences, counts)


def restore(sess, prefix, var_list=None, saver=None, experiment=None):
    """Restore ``var_list`` from the checkpoint ``prefix`` into ``sess``, checked first.

    Args:
      sess: the session; its graph holds the variables.
      prefix: a checkpoint prefix (see :func:`resolve_checkpoint` for user input).
      var_list: variables (or dict name -> variable); default all global variables of
        ``sess.graph``.
      saver: a ``tf.train.Saver`` over ``var_list`` to restore with (default: a new one).
      experiment: the experiment's name, for the error messages.

    Raises:
      CheckpointNotFoundError: ``prefix.index`` does not exist.
      CheckpointMismatchError: the checkpoint does not fit (:func:`check_compatible`).
    """
    if not os.path.exists(prefix + '.index'):
        raise CheckpointNotFoundError(
            'checkpoint %s not found: looked for %s.index.%s %s'
            % (prefix, prefix, _there(os.path.dirname(prefix) or '.'), _USAGE))
    with sess.graph.as_default():
        variables = var_list if var_list is not None else tf.global_variables()
        check_compatible(prefix, variables, experiment)
        (saver or tf.train.Saver(var_list=var_list)).restore(sess, prefix)
