"""Importing lighthead hides TensorFlow's C++ INFO lines unless the user chose a log level."""
import os
import subprocess
import sys

from lighthead.config import REPO_ROOT

SNIPPET = 'import lighthead.compat, os; print(os.environ["TF_CPP_MIN_LOG_LEVEL"])'


def run_import(level):
    env = dict(os.environ)
    env.pop('TF_CPP_MIN_LOG_LEVEL', None)
    if level is not None:
        env['TF_CPP_MIN_LOG_LEVEL'] = level
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [os.path.join(REPO_ROOT, 'lib'),
                                                      env.get('PYTHONPATH')]))
    done = subprocess.run([sys.executable, '-c', SNIPPET], env=env, cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr


def test_import_is_quiet_by_default():
    level, stderr = run_import(None)
    assert level == '1'
    assert 'cpu_feature_guard' not in stderr and 'disable_resource_variables' not in stderr, stderr


def test_user_log_level_is_kept():
    level, _ = run_import('0')
    assert level == '0'
