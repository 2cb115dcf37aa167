"""Install lighthead and build its PSAlignPool op library against the installed TensorFlow.

    pip install tensorflow-cpu            # or tensorflow (CUDA) / tensorflow==1.15.5
    pip install --no-build-isolation -e .  # the fast path: the op is compiled now
    pip install -e .   or   pip install .  # also work: the op is compiled on first use

The op must be compiled with the TensorFlow it will be loaded into. With
``--no-build-isolation`` the build sees the installed TensorFlow and compiles the op into the
package. pip's default isolated build environment has no TensorFlow: the build then ships the
kernel sources only, and ``lighthead.ops`` compiles them on first import (into the package's
``ops/_build`` if writable, else ``~/.cache/lighthead/ops``; a minute, once per TF version).
"""
import importlib.util
import os
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_builder():
    path = os.path.join(HERE, 'lib', 'lighthead', 'ops', 'build.py')
    spec = importlib.util.spec_from_file_location('_lighthead_ops_build', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithOps(build_py):
    """build_py that also compiles the op libraries (CPU always, CUDA when nvcc exists)."""

    def run(self):
        super().run()
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            print('lighthead: no TensorFlow in the build environment (pip builds in isolation '
                  'unless --no-build-isolation): the PSAlignPool op will be compiled on first '
                  'import instead, against the TensorFlow it runs with.', file=sys.stderr)
            return
        builder = _load_builder()
        # Editable installs load the ops from the source tree; regular installs from build_lib.
        targets = [os.path.join(HERE, 'lib', 'lighthead', 'ops')]
        if not self.editable_mode:
            targets.append(os.path.join(self.build_lib, 'lighthead', 'ops'))
        for pkg_dir in targets:
            builder.build(out_dir=os.path.join(pkg_dir, '_build'))


setup(
    name='lighthead',
    version='0.1.0',
    description='Light-Head R-CNN with the Xception* backbone, in TensorFlow (TF 2.x and TF 1.15)',
    package_dir={'': 'lib'},
    packages=find_packages('lib'),
    package_data={'lighthead.ops': ['kernels/*.cc', 'kernels/*.h', 'kernels/*.cu.cc']},
    python_requires='>=3.7',
    install_requires=['numpy', 'easydict', 'opencv-python-headless', 'pycocotools', 'tqdm',
                      'matplotlib'],
    cmdclass={'build_py': BuildWithOps},
)
