"""Shared fixtures: experiment configs loaded by file path, a tiny synthetic dataset."""
import os

import pytest

from lighthead.config import REPO_ROOT, apply_overrides, load_experiment, load_experiment_config
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
def load_network(load_config):
    """Function ``(name, overrides=()) -> (Network class, config)`` of an experiment, through
    :func:`lighthead.config.load_experiment` (its ``network_desp.Network``, bound to the
    freshly loaded config with the overrides applied)."""
    def load(name, overrides=()):
        cfg, network_cls = load_experiment(os.path.join(EXPERIMENTS_DIR, name), overrides)
        return network_cls, cfg
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
