"""Compile the PSAlignPool op libraries against the installed TensorFlow.

Outputs, in ``<out_dir>/tf-<tf.__version__>/``:

* ``psalign_pool_cpu.so``: op registration + multithreaded CPU kernels (g++), always built.
* ``psalign_pool_gpu.so``: the same plus the CUDA kernels (nvcc + g++, static CUDA runtime), built
  when ``nvcc`` is found and TensorFlow is 2.x (CUDA 12/13 headers need C++17; TF 1.15 is C++14).
  It is a superset of the CPU library: a process loads exactly one of the two.
* ``build_info.json``: TF version, a digest of the sources and of this file, the commands run.

Standalone on purpose: ``setup.py`` loads this file by path, so it imports no other lighthead
module, and it imports TensorFlow (directly, for ``tf.sysconfig`` only) inside functions.

GPU architectures: real code (``sm_XX``) for each of ``WANTED_CUDA_ARCHS`` that the installed nvcc
lists in ``nvcc --list-gpu-arch``, plus PTX (``compute_XX``) for the newest of them; the
``LIGHTHEAD_CUDA_ARCHS`` environment variable overrides that choice (see ``select_cuda_archs``).

Command line: ``python -m lighthead.ops.build [--no-cuda] [--out DIR] [--verbose]``.
"""
import argparse
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_DIR = os.path.join(HERE, 'kernels')
DEFAULT_OUT = os.path.join(HERE, '_build')
CPU_LIB = 'psalign_pool_cpu.so'
GPU_LIB = 'psalign_pool_gpu.so'
INFO_FILE = 'build_info.json'
OP_SOURCE = 'psalign_pool_op.cc'
CUDA_SOURCE = 'psalign_pool_op_gpu.cu.cc'
CUDA_ARCH_ENV = 'LIGHTHEAD_CUDA_ARCHS'
# V100, T4 / RTX 20xx, A100, RTX 30xx / A10 / A40, L4 / RTX 40xx, H100 / H200.
WANTED_CUDA_ARCHS = (70, 75, 80, 86, 89, 90)
# For an nvcc that cannot --list-gpu-arch (older than CUDA 11): the CUDA releases that compile each
# wanted architecture, as (first release, first release without it or None).
CUDA_RELEASES_OF_ARCH = {
    70: ((9, 0), (13, 0)),
    75: ((10, 0), None),
    80: ((11, 0), None),
    86: ((11, 1), None),
    89: ((11, 8), None),
    90: ((11, 8), None),
}
# TF's own headers use APIs they deprecate, and the op uses errors::* (kept for TF 1.15).
QUIET_FLAGS = ['-Wno-deprecated-declarations']


class BuildError(RuntimeError):
    """The build cannot go on: a compiler or linker command failed (the message quotes the command
    and its output), or the build was misconfigured (the message names the setting)."""


def tf_version():
    import tensorflow as tf
    return tf.__version__


def build_dir(out_dir):
    """Folder of the libraries for the installed TF version: ``<out_dir>/tf-<version>``."""
    return os.path.join(out_dir, 'tf-' + tf_version())


def sources_digest():
    """sha256 over the kernel sources (*.cc, *.h: what setup.py installs) and this file; a library
    built from other sources is stale."""
    h = hashlib.sha256()
    names = sorted(n for n in os.listdir(KERNEL_DIR) if n.endswith(('.cc', '.h')))
    for path in [os.path.join(KERNEL_DIR, n) for n in names] + [os.path.abspath(__file__)]:
        h.update(os.path.basename(path).encode())
        with open(path, 'rb') as f:
            h.update(f.read())
    return h.hexdigest()


def tf_flags():
    """(compile flags, link flags) for the installed TF, TF include dirs as ``-isystem``."""
    import tensorflow as tf
    compile_flags = []
    for flag in tf.sysconfig.get_compile_flags():
        if flag.startswith('-I'):
            compile_flags += ['-isystem', flag[2:]]
        else:
            compile_flags.append(flag)
    if not any(f.lstrip('-').startswith('std=') for f in compile_flags):
        compile_flags.append('-std=c++14')  # TF 1.15 gives none; its headers need C++11/14
    return compile_flags, list(tf.sysconfig.get_link_flags())


def format_command(cmd):
    return ' '.join(shlex.quote(str(a)) for a in cmd)


def run_compiler(cmd, verbose=False):
    """Run one compiler/linker command; raise BuildError quoting it and its full output."""
    if verbose:
        print(format_command(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
    except OSError as e:
        raise BuildError('could not run:\n  %s\n%s' % (format_command(cmd), e))
    if proc.returncode != 0:
        raise BuildError('command failed with exit code %d:\n  %s\n--- stderr ---\n%s'
                         '--- stdout ---\n%s' % (proc.returncode, format_command(cmd),
                                                 proc.stderr, proc.stdout))
    if verbose and (proc.stdout or proc.stderr):
        print(proc.stdout + proc.stderr, flush=True)


def compile_shared_library(sources, output, extra_flags=(), link_args=(), verbose=False):
    """g++ ``sources`` (C++ sources and objects) into the shared library ``output`` with TF's
    flags, -O3 -fPIC -shared. Returns the command run."""
    compile_flags, link_flags = tf_flags()
    cmd = (['g++'] + compile_flags + ['-O3', '-fPIC', '-shared'] + QUIET_FLAGS + list(extra_flags) + [str(s) for s in sources] +
           ['-o', str(output)] + list(link_args) + link_flags)
    run_compiler(cmd, verbose)
    return cmd


def find_nvcc():
    """Path of nvcc: $CUDA_HOME/bin, $CUDA_PATH/bin, PATH, /usr/local/cuda/bin; else None."""
    for var in ('CUDA_HOME', 'CUDA_PATH'):
        root = os.environ.get(var)
        if root and os.path.isfile(os.path.join(root, 'bin', 'nvcc')):
            return os.path.join(root, 'bin', 'nvcc')
    found = shutil.which('nvcc')
    if found:
        return found
    default = '/usr/local/cuda/bin/nvcc'
    return default if os.path.isfile(default) else None


def cuda_home(nvcc):
    """$CUDA_HOME, $CUDA_PATH, nvcc's grandparent folder or /usr/local/cuda: the first one that
    holds include/cuda_runtime.h (nvcc may be a wrapper script outside the toolkit)."""
    candidates = [os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH'),
                  os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), '/usr/local/cuda']
    for home in candidates:
        if home and os.path.isfile(os.path.join(home, 'include', 'cuda_runtime.h')):
            return home
    raise BuildError('CUDA toolkit (include/cuda_runtime.h) not found for %s; set CUDA_HOME' % nvcc)


def cuda_include_shim(tmp_dir, home):
    """TF's GPU headers include ``third_party/gpus/cuda/include/...``. If the TF wheel lacks that
    folder, make a build-local one linked to ``$CUDA_HOME/include``; return ``-I`` flags."""
    import tensorflow as tf
    if os.path.isdir(os.path.join(tf.sysconfig.get_include(), 'third_party', 'gpus', 'cuda',
                                  'include')):
        return []
    shim_root = os.path.join(tmp_dir, 'cuda_shim')
    link_parent = os.path.join(shim_root, 'third_party', 'gpus', 'cuda')
    os.makedirs(link_parent)
    os.symlink(os.path.join(home, 'include'), os.path.join(link_parent, 'include'))
    return ['-I', shim_root]


def cuda_lib_dir(home):
    for sub in ('lib64', 'lib', os.path.join('targets', 'x86_64-linux', 'lib')):
        if os.path.isfile(os.path.join(home, sub, 'libcudart_static.a')):
            return os.path.join(home, sub)
    raise BuildError('libcudart_static.a not found under %s (lib64, lib, targets/*/lib)' % home)


def parse_list_gpu_arch(output):
    """Architecture numbers (75 for ``compute_75``) in the output of ``nvcc --list-gpu-arch``, one
    ``compute_XX`` a line; architecture-specific variants such as ``compute_90a`` are ignored."""
    return {int(match.group(1)) for match in re.finditer(r'^\s*compute_(\d+)\s*$', output, re.M)}


def parse_nvcc_release(version_output):
    """(major, minor) from the ``release 12.4,`` of ``nvcc --version``; None if absent."""
    match = re.search(r'\brelease (\d+)\.(\d+)', version_output)
    return (int(match.group(1)), int(match.group(2))) if match else None


def archs_of_release(release):
    """The wanted architectures that CUDA ``release`` (major, minor) compiles, per
    ``CUDA_RELEASES_OF_ARCH``."""
    return {arch for arch, (first, dropped) in CUDA_RELEASES_OF_ARCH.items()
            if first <= release and (dropped is None or release < dropped)}


def format_archs(archs):
    """Architecture numbers as compute capabilities, the way ``LIGHTHEAD_CUDA_ARCHS`` writes them:
    ``[75, 90]`` -> ``'7.5 9.0'``."""
    return ' '.join('%d.%d' % (arch // 10, arch % 10) for arch in archs)


def parse_arch_override(value):
    """Entries of a ``LIGHTHEAD_CUDA_ARCHS`` value: ``[(arch, with_ptx), ...]`` in the given order.

    Syntax (as PyTorch's ``TORCH_CUDA_ARCH_LIST``): compute capabilities ``MAJOR.MINOR`` separated
    by semicolons or spaces, each optionally suffixed ``+PTX``, e.g. ``"7.5;8.0;9.0+PTX"``.
    Raises BuildError naming the variable and the bad entry.
    """
    entries = [entry for entry in re.split(r'[;\s]+', value) if entry]
    if not entries:
        raise BuildError('%s=%r names no GPU architecture; expected e.g. "7.5;8.0;9.0+PTX"'
                         % (CUDA_ARCH_ENV, value))
    parsed = []
    for entry in entries:
        match = re.match(r'^(\d+)\.(\d)(\+PTX)?$', entry)
        if not match:
            raise BuildError('%s: bad entry %r in %r; expected compute capabilities MAJOR.MINOR, '
                             'optionally with +PTX, separated by ";" or spaces, e.g. '
                             '"7.5;8.0;9.0+PTX"' % (CUDA_ARCH_ENV, entry, value))
        parsed.append((int(match.group(1) + match.group(2)), bool(match.group(3))))
    return parsed


def select_cuda_archs(supported, env_value=None):
    """The nvcc code targets to build, e.g. ``['sm_75', 'sm_80', 'sm_90', 'compute_90']``.

    supported: architecture numbers the nvcc compiles (``parse_list_gpu_arch``), or None if unknown.
    env_value: the value of ``LIGHTHEAD_CUDA_ARCHS``; None or blank selects the default rule.

    Default: ``sm_XX`` for each of ``WANTED_CUDA_ARCHS`` in ``supported``, plus ``compute_XX``
    (PTX, which the driver compiles for newer GPUs) for the newest of them. Override: ``sm_XX`` for
    each entry and ``compute_XX`` for each ``+PTX`` entry; an entry outside ``supported`` is an
    error. Real code comes first, by architecture, then PTX.
    """
    if env_value is None or not env_value.strip():
        if supported is None:
            raise BuildError('cannot tell which GPU architectures nvcc compiles; set %s, e.g. '
                             '"7.5;8.0;9.0+PTX"' % CUDA_ARCH_ENV)
        real = [arch for arch in WANTED_CUDA_ARCHS if arch in supported]
        if not real:
            raise BuildError('nvcc compiles none of the GPU architectures %s; set %s'
                             % (format_archs(WANTED_CUDA_ARCHS), CUDA_ARCH_ENV))
        ptx = [real[-1]]
    else:
        entries = parse_arch_override(env_value)
        for arch, _ in entries:
            if supported is not None and arch not in supported:
                raise BuildError('%s: entry %d.%d is not supported by this nvcc, which compiles %s'
                                 % (CUDA_ARCH_ENV, arch // 10, arch % 10,
                                    format_archs(sorted(supported))))
        real = sorted({arch for arch, _ in entries})
        ptx = sorted({arch for arch, with_ptx in entries if with_ptx})
    return ['sm_%d' % arch for arch in real] + ['compute_%d' % arch for arch in ptx]


def gencode_flags(targets):
    """nvcc flags for code targets from ``select_cuda_archs``: ``sm_XX`` -> ``-gencode
    arch=compute_XX,code=sm_XX`` (real code), ``compute_XX`` -> ``code=compute_XX`` (PTX)."""
    flags = []
    for target in targets:
        flags += ['-gencode', 'arch=compute_%s,code=%s' % (target.split('_')[1], target)]
    return flags


def query_nvcc(nvcc, option):
    """stdout of ``nvcc option``, or None if it cannot run or fails (an unknown option)."""
    try:
        proc = subprocess.run([nvcc, option], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def nvcc_supported_archs(nvcc):
    """Architecture numbers that ``nvcc`` compiles, from ``nvcc --list-gpu-arch`` (CUDA 11+). An
    older nvcc lacks that option: then the wanted architectures its ``--version`` release
    compiles, per ``CUDA_RELEASES_OF_ARCH``. None if neither answers."""
    listed = query_nvcc(nvcc, '--list-gpu-arch')
    archs = parse_list_gpu_arch(listed) if listed is not None else set()
    if archs:
        return archs
    version = query_nvcc(nvcc, '--version')
    release = parse_nvcc_release(version) if version is not None else None
    return archs_of_release(release) if release else None


def cuda_targets(nvcc):
    """``select_cuda_archs`` for ``nvcc`` and ``$LIGHTHEAD_CUDA_ARCHS``; logs the wanted
    architectures that the default rule leaves out because nvcc does not compile them."""
    supported = nvcc_supported_archs(nvcc)
    env_value = os.environ.get(CUDA_ARCH_ENV, '').strip() or None
    targets = select_cuda_archs(supported, env_value)
    if supported is not None and env_value is None:
        left_out = [arch for arch in WANTED_CUDA_ARCHS if arch not in supported]
        if left_out:
            logging.getLogger(__name__).info(
                '%s does not compile GPU architectures %s: left out of the CUDA library',
                nvcc, format_archs(left_out))
    return targets


def build_cuda_library(output, tmp_dir, nvcc, targets, verbose=False):
    """nvcc the CUDA launchers for the code ``targets`` (``select_cuda_archs``), then g++ them with
    the op (GPU kernels registered) into output. Returns the commands run."""
    home = cuda_home(nvcc)
    compile_flags, _ = tf_flags()
    shim = cuda_include_shim(tmp_dir, home)
    obj = os.path.join(tmp_dir, 'psalign_pool_op_gpu.cu.o')
    nvcc_cmd = ([nvcc] + compile_flags + shim +
                ['-DGOOGLE_CUDA=1', '-x', 'cu', '-Xcompiler', '-fPIC',
                 '--expt-relaxed-constexpr', '-DNDEBUG', '-O3'] + gencode_flags(targets) +
                ['-c', os.path.join(KERNEL_DIR, CUDA_SOURCE), '-o', obj])
    run_compiler(nvcc_cmd, verbose)
    link_cmd = compile_shared_library(
        [os.path.join(KERNEL_DIR, OP_SOURCE), obj], output,
        extra_flags=['-DLIGHTHEAD_WITH_CUDA'] + shim,
        link_args=['-L', cuda_lib_dir(home), '-l:libcudart_static.a', '-ldl', '-lrt', '-lpthread'],
        verbose=verbose)
    return [nvcc_cmd, link_cmd]


def build(out_dir, cuda='auto', verbose=False):
    """Build the op libraries into ``<out_dir>/tf-<tf.__version__>/``.

    cuda: 'auto' builds the CUDA library when nvcc is found and TF is 2.x; True requires it
    (BuildError otherwise); False skips it. Libraries are written under a temporary name and
    renamed, so a concurrent reader never sees a partial file.

    Returns {'dir', 'tf_version', 'cpu': path, 'gpu': path or None, 'gpu_skipped': reason or
    None, 'cuda_archs': code targets of the CUDA library (``select_cuda_archs``) or None,
    'seconds': {'cpu': s, 'gpu': s}, 'sources': digest, 'commands': [...]}.
    """
    if cuda not in ('auto', True, False):
        raise ValueError("cuda must be 'auto', True or False, got %r" % (cuda,))
    version = tf_version()
    target = build_dir(out_dir)
    os.makedirs(target, exist_ok=True)
    info = {'dir': target, 'tf_version': version, 'cpu': os.path.join(target, CPU_LIB),
            'gpu': None, 'gpu_skipped': None, 'cuda_archs': None, 'seconds': {},
            'sources': sources_digest(), 'commands': []}
    with tempfile.TemporaryDirectory(prefix='build-', dir=target) as tmp:
        start = time.time()
        tmp_cpu = os.path.join(tmp, CPU_LIB)
        info['commands'].append(format_command(compile_shared_library(
            [os.path.join(KERNEL_DIR, OP_SOURCE)], tmp_cpu, verbose=verbose)))
        info['seconds']['cpu'] = round(time.time() - start, 1)

        nvcc = find_nvcc() if cuda else None
        if not cuda:
            info['gpu_skipped'] = 'disabled'
        elif version.startswith('1.'):
            info['gpu_skipped'] = 'TF %s: CUDA kernels are built for TF 2.x only' % version
        elif nvcc is None:
            info['gpu_skipped'] = 'nvcc not found (set CUDA_HOME)'
        if cuda is True and info['gpu_skipped']:
            raise BuildError('CUDA library requested but not buildable: ' + info['gpu_skipped'])
        if not info['gpu_skipped']:
            start = time.time()
            tmp_gpu = os.path.join(tmp, GPU_LIB)
            info['cuda_archs'] = cuda_targets(nvcc)
            commands = build_cuda_library(tmp_gpu, tmp, nvcc, info['cuda_archs'], verbose=verbose)
            info['commands'] += [format_command(c) for c in commands]
            info['seconds']['gpu'] = round(time.time() - start, 1)
            info['gpu'] = os.path.join(target, GPU_LIB)
            os.replace(tmp_gpu, info['gpu'])
        os.replace(tmp_cpu, info['cpu'])
    stale_gpu = os.path.join(target, GPU_LIB)
    if info['gpu'] is None and os.path.exists(stale_gpu):
        os.remove(stale_gpu)
    tmp_info = os.path.join(target, INFO_FILE + '.tmp')
    with open(tmp_info, 'w') as f:
        json.dump(info, f, indent=1)
    os.replace(tmp_info, os.path.join(target, INFO_FILE))
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description='Build the PSAlignPool op libraries.')
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='output root; libraries go to OUT/tf-<version>/ (default: %(default)s)')
    parser.add_argument('--no-cuda', action='store_true', help='skip the CUDA library')
    parser.add_argument('--verbose', action='store_true', help='print commands and their output')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='lighthead.ops.build: %(message)s')
    try:
        info = build(args.out, cuda=False if args.no_cuda else 'auto', verbose=args.verbose)
    except BuildError as e:
        print('lighthead.ops.build: ' + str(e), file=sys.stderr)
        return 1
    print(json.dumps({k: info[k] for k in ('dir', 'cpu', 'gpu', 'gpu_skipped', 'cuda_archs',
                                            'seconds')},
                     indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
