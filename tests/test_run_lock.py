"""One training run per output folder (lighthead.train.run_lock)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from lighthead.config import REPO_ROOT, make_config
from lighthead.train import run_lock

HOLDER = ('import sys, time\n'
          'from lighthead.train import run_lock\n'
          'run_lock.acquire(sys.argv[1])\n'
          'print("locked", flush=True)\n'
          'time.sleep(120)\n')


@pytest.fixture
def holder(tmp_path):
    """A process that holds the lock of ``tmp_path/out`` (``.folder``, ``.proc``)."""
    folder = str(tmp_path / 'out')
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, 'lib'))
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, folder], stdout=subprocess.PIPE,
                            env=env, universal_newlines=True)
    try:
        assert proc.stdout.readline().strip() == 'locked'
        proc.folder = folder
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_second_run_is_refused_at_once_naming_the_folder_and_pid(holder):
    t0 = time.time()
    with pytest.raises(run_lock.RunLockedError) as info:
        run_lock.acquire(holder.folder)
    assert time.time() - t0 < 2.0
    message = str(info.value)
    assert 'output folder %s is in use by another training run (pid %d' % (
        os.path.realpath(holder.folder), holder.pid) in message
    assert '\n' not in message


def test_the_lock_of_a_killed_run_does_not_block_a_resume(holder):
    with open(os.path.join(holder.folder, run_lock.LOCK_NAME)) as f:
        assert f.read().strip() == str(holder.pid)
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(30) == -signal.SIGKILL
    # The stale file stays; only the flock counted, and the kernel released it.
    with run_lock.acquire(holder.folder):
        with open(os.path.join(holder.folder, run_lock.LOCK_NAME)) as f:
            assert f.read().strip() == str(os.getpid())


def test_train_py_refuses_a_locked_folder_before_building(holder):
    from lighthead.train import cli as train_cli
    cfg = make_config(output_dir=holder.folder)
    with pytest.raises(SystemExit) as info:
        train_cli.main(cfg, None, [])  # network_cls None: refused before anything is built
    message = str(info.value.code)
    assert message.startswith('lighthead: output folder %s is in use by another training run '
                              '(pid %d' % (os.path.realpath(holder.folder), holder.pid))
    assert '\n' not in message
    assert os.listdir(holder.folder) == [run_lock.LOCK_NAME]  # nothing written


def test_reentrant_in_a_process_and_released_by_the_last(tmp_path):
    folder = str(tmp_path / 'out')
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, 'lib'))
    probe = ('import sys\nfrom lighthead.train import run_lock\n'
             'try:\n    run_lock.acquire(sys.argv[1])\nexcept run_lock.RunLockedError:\n'
             '    sys.exit(3)\n')

    def other_process_rc():
        return subprocess.call([sys.executable, '-c', probe, folder], env=env)

    outer = run_lock.acquire(folder)
    inner = run_lock.acquire(folder)  # train.py, then Trainer.train
    inner.release()
    assert other_process_rc() == 3
    outer.release()
    assert other_process_rc() == 0


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_a_forked_worker_does_not_keep_the_folder_locked(tmp_path):
    folder = str(tmp_path / 'out')
    lock = run_lock.acquire(folder)
    pid = os.fork()
    if pid == 0:  # a data worker that outlives the run
        time.sleep(30)
        os._exit(0)
    try:
        lock.release()
        with run_lock.acquire(folder):  # a new open file: fails if the child held the flock
            pass
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
