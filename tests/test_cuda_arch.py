"""Which GPU architectures the CUDA library is compiled for (``lighthead.ops.build``): the default
rule against fake ``nvcc --list-gpu-arch`` outputs of CUDA 11, 12 and 13, the
``LIGHTHEAD_CUDA_ARCHS`` override and its errors, the fallback for an nvcc without
``--list-gpu-arch``, and the same through fake ``nvcc`` executables on PATH."""
import logging
import os
import stat

import pytest

from lighthead.ops import build


def list_gpu_arch(*archs):
    """What ``nvcc --list-gpu-arch`` prints: one ``compute_XX`` a line."""
    return ''.join('compute_%s\n' % arch for arch in archs)


CUDA_11_4_LIST = list_gpu_arch(35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87)
CUDA_12_4_LIST = list_gpu_arch(50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90, '90a')
CUDA_13_0_LIST = list_gpu_arch(75, 80, 86, 87, 88, 89, 90, 100, 110, 103, 120, 121)
CUDA_13_0_TARGETS = ['sm_75', 'sm_80', 'sm_86', 'sm_89', 'sm_90', 'compute_90']
CUDA_13_0_VERSION = ('nvcc: NVIDIA (R) Cuda compiler driver\n'
                     'Cuda compilation tools, release 13.0, V13.0.88\n')
CUDA_10_2_VERSION = ('nvcc: NVIDIA (R) Cuda compiler driver\n'
                     'Cuda compilation tools, release 10.2, V10.2.89\n')


def select(list_output, env_value=None):
    return build.select_cuda_archs(build.parse_list_gpu_arch(list_output), env_value)


def test_cuda_11_gets_every_wanted_arch_up_to_sm_86_and_ptx_of_86():
    assert select(CUDA_11_4_LIST) == ['sm_70', 'sm_75', 'sm_80', 'sm_86', 'compute_86']


def test_cuda_12_gets_sm_70_to_sm_90_and_ptx_of_90_ignoring_90a():
    assert build.parse_list_gpu_arch(CUDA_12_4_LIST) == {
        50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90}
    assert select(CUDA_12_4_LIST) == ['sm_70', 'sm_75', 'sm_80', 'sm_86', 'sm_89', 'sm_90',
                                      'compute_90']


def test_cuda_13_leaves_out_sm_70_it_no_longer_compiles():
    assert select(CUDA_13_0_LIST) == CUDA_13_0_TARGETS


def test_gencode_flags_give_real_code_per_sm_and_ptx_per_compute():
    assert build.gencode_flags(['sm_75', 'sm_90', 'compute_90']) == [
        '-gencode', 'arch=compute_75,code=sm_75',
        '-gencode', 'arch=compute_90,code=sm_90',
        '-gencode', 'arch=compute_90,code=compute_90']


@pytest.mark.parametrize('env_value',
                         ['7.5;8.0;9.0+PTX', '9.0+PTX 7.5  8.0', ' 7.5; 8.0;9.0+PTX;'])
def test_override_picks_exactly_the_listed_archs_whatever_the_separators(env_value):
    assert select(CUDA_12_4_LIST, env_value) == ['sm_75', 'sm_80', 'sm_90', 'compute_90']


def test_override_without_ptx_entry_builds_no_ptx_and_may_name_archs_beyond_the_wanted_ones():
    assert select(CUDA_13_0_LIST, '8.6;12.0') == ['sm_86', 'sm_120']


def test_blank_override_means_the_default_rule():
    assert select(CUDA_13_0_LIST, '  ') == CUDA_13_0_TARGETS


@pytest.mark.parametrize('env_value, bad_entry', [
    ('7.5;sm_80', 'sm_80'),
    ('75 8.0', '75'),
    ('8.0;9.0+ptx', '9.0+ptx'),
    ('8.0,9.0', '8.0,9.0'),
    ('8.10', '8.10'),
])
def test_bad_override_entry_is_an_error_naming_the_variable_and_the_entry(env_value, bad_entry):
    with pytest.raises(build.BuildError) as error:
        select(CUDA_12_4_LIST, env_value)
    message = str(error.value)
    assert build.CUDA_ARCH_ENV in message and repr(bad_entry) in message


def test_override_with_only_separators_is_an_error():
    with pytest.raises(build.BuildError, match=build.CUDA_ARCH_ENV + ".*names no GPU arch"):
        select(CUDA_12_4_LIST, ';;')


def test_override_entry_this_nvcc_cannot_compile_is_an_error_naming_it():
    with pytest.raises(build.BuildError) as error:
        select(CUDA_13_0_LIST, '7.0;8.0+PTX')
    message = str(error.value)
    assert build.CUDA_ARCH_ENV in message and 'entry 7.0 is not supported' in message
    assert '7.5 8.0 8.6' in message  # what it does compile


def test_nvcc_that_compiles_none_of_the_wanted_archs_is_an_error_pointing_to_the_override():
    with pytest.raises(build.BuildError, match=build.CUDA_ARCH_ENV):
        select(list_gpu_arch(100, 120))


def test_unknown_supported_archs_need_the_override():
    with pytest.raises(build.BuildError, match='cannot tell.*' + build.CUDA_ARCH_ENV):
        build.select_cuda_archs(None)
    assert build.select_cuda_archs(None, '7.0;7.5+PTX') == ['sm_70', 'sm_75', 'compute_75']


def test_fallback_table_follows_the_release_of_nvcc_version():
    assert build.parse_nvcc_release(CUDA_10_2_VERSION) == (10, 2)
    assert build.parse_nvcc_release('nvcc fatal : something else') is None
    assert build.archs_of_release((9, 2)) == {70}
    assert build.archs_of_release((10, 2)) == {70, 75}
    assert build.archs_of_release((11, 1)) == {70, 75, 80, 86}
    assert build.archs_of_release((13, 0)) == {75, 80, 86, 89, 90}


UNKNOWN_OPTION = """echo "nvcc fatal   : Unknown option '$1'" >&2; exit 1"""


def install_fake_nvcc(tmp_path, monkeypatch, list_gpu_arch_output, version_output):
    """Put an executable ``nvcc`` shell script first on PATH, with CUDA_HOME and CUDA_PATH unset so
    that ``find_nvcc`` takes it from PATH; return its path. It prints ``list_gpu_arch_output`` for
    ``--list-gpu-arch`` (None: fails as an unknown option, like nvcc < 11) and ``version_output``
    for ``--version``."""
    list_action = (UNKNOWN_OPTION if list_gpu_arch_output is None
                   else "printf '%s' '" + list_gpu_arch_output + "'")
    script = ('#!/bin/sh\n'
              'case "$1" in\n'
              '  --list-gpu-arch) ' + list_action + ' ;;\n'
              "  --version) printf '%s' '" + version_output + "' ;;\n"
              '  *) ' + UNKNOWN_OPTION + ' ;;\n'
              'esac\n')
    folder = tmp_path / 'bin'
    folder.mkdir()
    nvcc = folder / 'nvcc'
    nvcc.write_text(script)
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv('PATH', str(folder) + os.pathsep + os.environ.get('PATH', ''))
    monkeypatch.delenv('CUDA_HOME', raising=False)
    monkeypatch.delenv('CUDA_PATH', raising=False)
    monkeypatch.delenv(build.CUDA_ARCH_ENV, raising=False)
    return str(nvcc)


def test_fake_cuda_13_nvcc_on_path_is_listed_and_sm_70_is_logged_as_left_out(
        tmp_path, monkeypatch, caplog):
    nvcc = install_fake_nvcc(tmp_path, monkeypatch, CUDA_13_0_LIST, CUDA_13_0_VERSION)
    assert build.find_nvcc() == nvcc
    with caplog.at_level(logging.INFO, logger=build.__name__):
        assert build.cuda_targets(nvcc) == CUDA_13_0_TARGETS
    left_out = [r.getMessage() for r in caplog.records if 'left out' in r.getMessage()]
    assert left_out == ['%s does not compile GPU architectures 7.0: left out of the CUDA library'
                        % nvcc]


def test_fake_nvcc_on_path_obeys_the_override_from_the_environment(tmp_path, monkeypatch):
    nvcc = install_fake_nvcc(tmp_path, monkeypatch, CUDA_13_0_LIST, CUDA_13_0_VERSION)
    monkeypatch.setenv(build.CUDA_ARCH_ENV, '8.9+PTX;8.0')
    assert build.cuda_targets(nvcc) == ['sm_80', 'sm_89', 'compute_89']
    monkeypatch.setenv(build.CUDA_ARCH_ENV, '7.0')
    with pytest.raises(build.BuildError, match=build.CUDA_ARCH_ENV + ': entry 7.0'):
        build.cuda_targets(nvcc)


def test_fake_old_nvcc_without_list_gpu_arch_falls_back_to_its_release(tmp_path, monkeypatch):
    nvcc = install_fake_nvcc(tmp_path, monkeypatch, None, CUDA_10_2_VERSION)
    assert build.query_nvcc(nvcc, '--list-gpu-arch') is None
    assert build.nvcc_supported_archs(nvcc) == {70, 75}
    assert build.cuda_targets(nvcc) == ['sm_70', 'sm_75', 'compute_75']


def test_fake_nvcc_that_answers_nothing_asks_for_the_override(tmp_path, monkeypatch):
    nvcc = install_fake_nvcc(tmp_path, monkeypatch, None, 'no release here')
    assert build.nvcc_supported_archs(nvcc) is None
    with pytest.raises(build.BuildError, match='cannot tell.*' + build.CUDA_ARCH_ENV):
        build.cuda_targets(nvcc)
    monkeypatch.setenv(build.CUDA_ARCH_ENV, '7.5+PTX')
    assert build.cuda_targets(nvcc) == ['sm_75', 'compute_75']
