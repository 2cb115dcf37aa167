"""Install lighthead and build its PSAlignPool op library against the installed TensorFlow.

    pip install tensorflow-cpu            # or tensorflow (CUDA) / tensorflow==1.15.5
    pip install --no-build-isolation -e .

``--no-build-isolation`` matters: the op must be compiled with the TensorFlow it will be
loaded into, and pip's isolated build environment has none.
"""
import importlib.util
import os

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
        builder = _load_builder()
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            raise SystemExit(
                'lighthead: TensorFlow is not importable in the build environment, so the '
                'PSAlignPool op cannot be compiled against it.\n'
                'Install TensorFlow first, then: pip install --no-build-isolation -e .')
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
