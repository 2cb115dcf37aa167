"""lighthead.config.load_experiment: an experiment folder's config (with overrides) and its own
network_desp.Network, bound to that config, for the tools that build an experiment's network."""
import importlib.util
import os
import sys
import types

import pytest

from lighthead.config import REPO_ROOT, load_experiment
from lighthead.network import LightHeadNetwork

CONFIG = '''
from lighthead.config import make_config

MARK = %(mark)r
config = make_config(exp_name=%(mark)r, class_names=['background', 'a', 'b'],
                     rpn_channels=64, head_mid_channels=16)
cfg = config
'''

# Observable changes: a class attribute read from this experiment's config.py at import time,
# an attribute set in __init__ and an overridden method.
NETWORK = '''
from config import MARK, config
from lighthead.network import LightHeadNetwork


class Network(LightHeadNetwork):
    mark = MARK

    def __init__(self):
        super(Network, self).__init__(config)
        self.built_by = 'network_desp of ' + MARK

    def gradient_multiplier(self, variable):
        return 7.0
'''

# The bundled experiments' network_desp.py: nothing changed.
PLAIN_NETWORK = '''
from config import config
from lighthead.network import LightHeadNetwork


class Network(LightHeadNetwork):
    mark = 'plain'

    def __init__(self):
        super(Network, self).__init__(config)
'''

# Stands in for a backbone variable (gradient multiplier 1 in the library's network).
BACKBONE_VARIABLE = types.SimpleNamespace(op=types.SimpleNamespace(name='xception_star/conv1/w'))


def make_experiment(root, mark, network=NETWORK, config=CONFIG):
    """Folder ``root/mark`` with ``config.py`` and ``network_desp.py`` (None: left out)."""
    path = os.path.join(str(root), mark)
    os.makedirs(path)
    for name, text in (('config.py', config), ('network_desp.py', network)):
        if text is not None:
            with open(os.path.join(path, name), 'w') as f:
                f.write(text % {'mark': mark} if name == 'config.py' else text)
    return path


@pytest.fixture
def no_config_module(monkeypatch, output_dir):
    """No ``config`` module in ``sys.modules`` during the test (restored afterwards)."""
    monkeypatch.delitem(sys.modules, 'config', raising=False)


def test_returns_the_experiments_own_network(tmp_path, no_config_module):
    cfg, network_cls = load_experiment(make_experiment(tmp_path, 'alpha'))
    assert network_cls.__name__ == 'Network' and issubclass(network_cls, LightHeadNetwork)
    assert network_cls.mark == 'alpha'
    net = network_cls()
    assert net.cfg is cfg and cfg.exp_name == 'alpha' and cfg.num_classes == 3
    assert net.built_by == 'network_desp of alpha'
    assert net.gradient_multiplier(BACKBONE_VARIABLE) == 7.0
    assert 'config' not in sys.modules


def test_overrides_reach_the_network(tmp_path, no_config_module):
    path = make_experiment(tmp_path, 'alpha')
    cfg, network_cls = load_experiment(path, ['TEST.NMS=0.25', 'rpn_channels=32',
                                              "class_names=['background', 'x']"])
    net = network_cls()
    assert net.cfg is cfg
    assert (cfg.TEST.NMS, cfg.rpn_channels, cfg.num_classes) == (0.25, 32, 2)
    # Each call loads the files afresh: the overrides do not stay in a later load.
    fresh, _ = load_experiment(path)
    assert fresh is not cfg and (fresh.TEST.NMS, fresh.rpn_channels) == (0.5, 64)
    assert cfg.TEST.NMS == 0.25
    with pytest.raises(KeyError, match='no_such_key'):
        load_experiment(path, ['no_such_key=1'])
    with pytest.raises(ValueError, match='not KEY=VALUE'):
        load_experiment(path, ['rpn_channels'])


def test_two_experiments_do_not_leak(tmp_path, monkeypatch, output_dir):
    other = types.ModuleType('config')
    monkeypatch.setitem(sys.modules, 'config', other)
    cfg_a, net_a = load_experiment(make_experiment(tmp_path, 'alpha'))
    assert sys.modules['config'] is other
    cfg_b, net_b = load_experiment(make_experiment(tmp_path, 'beta', network=PLAIN_NETWORK),
                                   ['rpn_channels=128'])
    assert sys.modules['config'] is other
    a, b = net_a(), net_b()
    assert a.cfg is cfg_a and b.cfg is cfg_b
    assert (cfg_a.exp_name, cfg_a.rpn_channels) == ('alpha', 64)
    assert (cfg_b.exp_name, cfg_b.rpn_channels) == ('beta', 128)
    assert (net_a.mark, net_b.mark) == ('alpha', 'plain')
    assert a.gradient_multiplier(BACKBONE_VARIABLE) == 7.0
    assert b.gradient_multiplier(BACKBONE_VARIABLE) == 1.0
    assert not hasattr(b, 'built_by')


def test_config_module_restored_when_network_desp_fails(tmp_path, monkeypatch, output_dir):
    other = types.ModuleType('config')
    monkeypatch.setitem(sys.modules, 'config', other)
    path = make_experiment(tmp_path, 'broken', network='from config import config\n1 / 0\n')
    with pytest.raises(ZeroDivisionError):
        load_experiment(path)
    assert sys.modules['config'] is other
    monkeypatch.delitem(sys.modules, 'config')
    with pytest.raises(ZeroDivisionError):
        load_experiment(path)
    assert 'config' not in sys.modules


def test_clear_errors(tmp_path, no_config_module):
    missing = os.path.join(str(tmp_path), 'nowhere')
    with pytest.raises(IOError, match='no experiment config .*nowhere.config\\.py'):
        load_experiment(missing)
    path = make_experiment(tmp_path, 'headless', network=None)
    with pytest.raises(IOError, match='no experiment network .*headless.network_desp\\.py'):
        load_experiment(path)
    path = make_experiment(tmp_path, 'nameless', network='from config import config\nNet = 1\n')
    with pytest.raises(ImportError, match='nameless.network_desp\\.py defines no class Network'):
        load_experiment(path)
    assert 'config' not in sys.modules


@pytest.mark.parametrize('name', sorted(os.listdir(os.path.join(REPO_ROOT, 'experiments'))))
def test_bundled_experiments(name, no_config_module):
    path = os.path.join(REPO_ROOT, 'experiments', name)
    cfg, network_cls = load_experiment(path, ['TEST.NMS=0.4'])
    assert cfg.exp_name == name
    assert network_cls().cfg is cfg and cfg.TEST.NMS == 0.4
    assert 'config' not in sys.modules


def test_benchmark_builds_on_the_experiments_network(tmp_path, no_config_module):
    """The benchmark times the experiment's network: one whose thin feature map goes through
    an extra 1 x 1 convolution (no variables) counts that convolution's multiply-adds."""
    from lighthead import benchmark
    network = NETWORK + '''
    def thin_feature_map(self, feat):
        from lighthead.compat import tf
        thin = super(Network, self).thin_feature_map(feat)
        channels = self.cfg.head_out_channels
        return tf.nn.conv2d(thin, tf.ones([1, 1, channels, channels]) / channels,
                            [1, 1, 1, 1], 'SAME', name='extra_1x1')
'''
    cfg, network_cls = load_experiment(make_experiment(tmp_path, 'wide', network=network))
    net = benchmark.benchmark_network(cfg, 50, network_cls)
    assert isinstance(net, network_cls)
    assert net.built_by == 'network_desp of wide'
    assert net.gradient_multiplier(BACKBONE_VARIABLE) == 7.0
    assert net.cfg.TEST.RPN_POST_NMS_TOP_N == 50 and cfg.TEST.RPN_POST_NMS_TOP_N != 50
    library = benchmark.count_forward_gflops(cfg, 64, 96, 50)
    own = benchmark.count_forward_gflops(cfg, 64, 96, 50, network_cls)
    # xception_star: the thin feature map is at 1/32 (2 x 3 cells at 64 x 96).
    extra_macs = 2 * 3 * cfg.head_out_channels ** 2
    assert own - library == pytest.approx(2 * extra_macs / 1e9, rel=1e-6)
    other_cfg, _ = load_experiment(make_experiment(tmp_path, 'other'))
    with pytest.raises(ValueError, match='bound to another config'):
        benchmark.benchmark_network(other_cfg, 50, network_cls)


def _tool(name):
    """tools/<name>.py as a module (loaded by path)."""
    spec = importlib.util.spec_from_file_location(
        'tool_' + name, os.path.join(REPO_ROOT, 'tools', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('tool', ['predict', 'compat_dump', 'benchmark'])
def test_tools_build_the_experiments_network(tool, tmp_path, no_config_module):
    """Each tool builds ``network_desp.Network()``: here one that refuses to be built."""
    network = NETWORK.replace("        self.built_by = 'network_desp of ' + MARK",
                              "        raise RuntimeError('built by network_desp of ' + MARK)")
    path = make_experiment(tmp_path, 'custom', network=network)
    image, ckpt = tmp_path / 'x.png', tmp_path / 'fake.ckpt'
    image.write_bytes(b'')  # only its existence is checked before the network is built
    (tmp_path / 'fake.ckpt.index').write_bytes(b'')
    argv = {'predict': ['--exp', path, '--ckpt', str(ckpt), '--out', str(tmp_path / 'out'),
                        str(image)],
            'compat_dump': ['save', str(tmp_path / 'dump'), '--exp', path],
            'benchmark': ['--exp', path, '--height', '64', '--width', '96']}[tool]
    with pytest.raises(RuntimeError, match='built by network_desp of custom'):
        _tool(tool).main(argv)
