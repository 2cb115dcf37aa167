"""One training run per output folder: an exclusive ``flock`` on ``<output_dir>/.lock``.

A run holds the lock from before it writes anything until it ends; the file holds the pid of
the holder. A second run on the same folder is refused at once with :class:`RunLockedError`
(naming the folder and the holder's pid). The kernel releases a ``flock`` when its holder dies
(also on SIGKILL), so a stale ``.lock`` file of a killed run does not block a resume; the file
itself is never removed (removing it would let two runs lock two different files).

The lock is reentrant within a process (``train.py`` takes it, then ``Trainer.train`` again),
and forked children (data workers) close their copy of the descriptor, so that a worker that
outlives a killed run does not keep the folder locked.
"""
import errno
import fcntl
import os

LOCK_NAME = '.lock'

_held = {}  # real path of the lock file -> [fd, count]


class RunLockedError(RuntimeError):
    """Another process holds the output folder's lock; the message is one line."""


def _close_in_child():
    for fd, _ in list(_held.values()):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_close_in_child)


def _holder_pid(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except (IOError, OSError):
        return None
    return int(text) if text.isdigit() else None


class RunLock(object):
    """The lock of ``output_dir`` held by this process; :meth:`release` (or ``with``) ends it."""

    def __init__(self, path):
        self.path = path
        self.released = False

    def release(self):
        if self.released:
            return
        self.released = True
        entry = _held.get(self.path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _held[self.path]
            try:
                fcntl.flock(entry[0], fcntl.LOCK_UN)
            finally:
                os.close(entry[0])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def acquire(output_dir):
    """Lock ``output_dir`` (created if missing) for this training run; returns a
    :class:`RunLock`. Does not wait.

    Raises:
      RunLockedError: another live process holds it; the message names the folder, the
        holder's pid and what to do.
    """
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.realpath(os.path.join(output_dir, LOCK_NAME))
    entry = _held.get(path)
    if entry is not None:
        entry[1] += 1
        return RunLock(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError) as e:
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise
        pid = _holder_pid(path)
        raise RunLockedError(
            'output folder %s is in use by another training run (pid %s, lock file %s): wait '
            'for it to finish or stop it, or train into another folder (OUTPUT_DIR=... or '
            'output_dir=...)' % (os.path.dirname(path), pid if pid is not None else 'unknown',
                                 path))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, ('%d\n' % os.getpid()).encode())
    except OSError:
        os.close(fd)
        raise
    _held[path] = [fd, 1]
    return RunLock(path)
