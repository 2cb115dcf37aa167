"""Shared fixtures: experiment configs loaded by file path, a tiny synthetic dataset."""
import importlib.util
import os
import sys
import types

import pytest

from lighthead.config import REPO_ROOT, apply_overrides, load_experiment_config
from lighthead.datasets.synthetic import generate

EXPERIMENTS_DIR = os.path.join(REPO_ROOT, 'experiments')


@pytest.fixture
def output_dir(tmp_path, monkeypatch):
    """A fresh output folder, also set as ``OUTPUT_DIR`` so that nothing goes to the repo."""
    path = str(tmp_path / 'output')
    monkeypatch.setenv('OUTPUT_DIR', path)
    return path


@pytest.fixture
def load_config(output_dir):
    """Function ``(name, overrides=()) -> config`` of ``experiments/<name>/config.py`` with
    ``KEY=VALUE`` overrides applied.

    Every call executes the file again, so each caller gets its own ``config`` object; its
    ``output_dir`` is the test's ``output_dir``.
    """
    def load(name, overrides=()):
        cfg = load_experiment_config(os.path.join(EXPERIMENTS_DIR, name))
        return apply_overrides(cfg, list(overrides))
    return load


@pytest.fixture
def load_network(load_config, monkeypatch):
    """Function ``(name, overrides=()) -> (Network class, config)`` of an experiment.

    ``experiments/<name>/network_desp.py`` runs ``from config import config``: a module holding
    the freshly loaded config (overrides applied) stands in for ``config`` in ``sys.modules``
    until the test ends.
    """
    def load(name, overrides=()):
        cfg = load_config(name, overrides)
        stand_in = types.ModuleType('config')
        stand_in.config = cfg
        monkeypatch.setitem(sys.modules, 'config', stand_in)
        path = os.path.join(EXPERIMENTS_DIR, name, 'network_desp.py')
        spec = importlib.util.spec_from_file_location('lighthead_test_network_desp_%s' % name,
                                                      path)
        desp = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(desp)
        return desp.Network, cfg
    return load


@pytest.fixture(scope='session')
def tiny_shapes(tmp_path_factory):
    """The synthetic shapes dataset, 16 train and 6 val images of 128 x 160 (seed 0).

    Returns ``lighthead.datasets.synthetic.generate``'s dict of paths, plus ``'overrides'``:
    the ``KEY=VALUE`` strings that point a config's train and eval sources at it and set its
    image size.
    """
    paths = generate(str(tmp_path_factory.mktemp('tiny_shapes')), num_train=16, num_val=6,
                     image_size=(128, 160), seed=0)
    paths['overrides'] = [
        'train_source=' + paths['train_json'], 'train_root_folder=' + paths['train_images'],
        'eval_source=' + paths['val_json'], 'eval_root_folder=' + paths['val_images'],
        'image_short_size=128', 'image_max_size=160']
    return paths
