"""A plain ``pip install .`` (isolated build, no TensorFlow in the build environment) works: the
wheel ships the kernel sources for the first-import build and no stale op library."""
import glob
import os
import subprocess
import sys
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_isolated_wheel_build_ships_kernel_sources_without_a_library(tmp_path):
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', REPO_ROOT, '--no-deps', '-v', '-w', str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'compiled on first import' in proc.stdout
    wheels = glob.glob(str(tmp_path / 'lighthead-*.whl'))
    assert len(wheels) == 1, os.listdir(str(tmp_path))
    names = zipfile.ZipFile(wheels[0]).namelist()
    for source in ('psalign_pool_op.cc', 'psalign_pool.h', 'psalign_pool_op_gpu.cu.cc'):
        assert 'lighthead/ops/kernels/' + source in names
    assert 'lighthead/ops/build.py' in names
    assert not [n for n in names if n.endswith('.so')]
