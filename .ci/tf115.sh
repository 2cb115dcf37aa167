#!/usr/bin/env bash
# CI job: lighthead on TensorFlow 1.15 (Python 3.7), from scratch.
#
#   bash .ci/tf115.sh        (from any folder: it runs in the repo root)
#
# 1. finds Python 3.7 ($PYTHON37, python3.7 on PATH, or pyenv's 3.7.x); without it the job is
#    SKIPPED with a loud banner and exit 0 (never a silent green);
# 2. builds .venv37 anew: TF 1.15.5, numpy 1.18.5, protobuf 3.20.3 and the other requirements
#    in versions with Python 3.7 wheels, then `pip install --no-build-isolation -e .`, which
#    compiles the PSAlignPool op with TF 1.15's flags (-D_GLIBCXX_USE_CXX11_ABI=0);
# 3. runs under TF 1.15 the whole test suite (the op tests; tests/test_network.py, which builds
#    and runs every experiment; tests/test_dropin.py, which needs tf.contrib.slim and is skipped
#    under TF 2.x; tests/test_tf_compat.py, checkpoints TF 1.15 <-> TF 2.x both ways against the
#    TF 2.x venv: LIGHTHEAD_OTHER_PYTHON, default .venv/bin/python, built by the TF 2.x job);
# 4. saves a checkpoint of every experiment's TEST graph after a forward (tools/compat_dump.py)
#    and trains the quickstart experiment for a few iterations through its train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
start=$(date +%s)
elapsed() { echo "== tf115: $1 (elapsed $(( $(date +%s) - start )) s)"; }

skip_banner() {
    echo "################################################################################"
    echo "#  TF1.15 JOB SKIPPED: $1"
    echo "#  NOT RUN: the test suite under TF 1.15 (with the drop-in tests and the"
    echo "#           TF1<->TF2 checkpoint tests), TF 1.15 experiment forwards and training."
    echo "################################################################################"
}

find_python37() {
    local candidates=()
    [ -n "${PYTHON37:-}" ] && candidates+=("$PYTHON37")
    command -v python3.7 >/dev/null 2>&1 && candidates+=("$(command -v python3.7)")
    for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.7.*/bin/python; do
        [ -x "$p" ] && candidates+=("$p")
    done
    local c
    for c in "${candidates[@]}"; do
        if "$c" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 7))' 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

if ! PY37=$(find_python37); then
    skip_banner "no python3.7 (set PYTHON37, or install it, e.g. pyenv install 3.7.16)"
    exit 0
fi
OTHER_PYTHON=${LIGHTHEAD_OTHER_PYTHON:-$ROOT/.venv/bin/python}
if [ ! -x "$OTHER_PYTHON" ]; then
    echo "tf115.sh: the TF 2.x interpreter $OTHER_PYTHON (for the checkpoint compatibility" >&2
    echo "test) does not exist: build .venv first (bash tools/setup_env.sh) or set" >&2
    echo "LIGHTHEAD_OTHER_PYTHON." >&2
    exit 1
fi
echo "== tf115: Python $("$PY37" -c 'import platform; print(platform.python_version())') at $PY37"

rm -rf .venv37
"$PY37" -m venv .venv37
VPY=$ROOT/.venv37/bin/python
# pip 24.0 and setuptools 68.0 are the last releases for Python 3.7; setuptools >= 64 is needed
# for the PEP 660 editable install (setup.py reads build_py.editable_mode).
"$VPY" -m pip install -q --upgrade "pip<24.1" "setuptools>=64,<68.1" wheel
"$VPY" -m pip install -q tensorflow==1.15.5 numpy==1.18.5 protobuf==3.20.3 \
    opencv-python-headless==4.8.1.78 pycocotools tqdm matplotlib easydict pytest
elapsed "venv ready"
# --use-pep517: without a pyproject.toml, pip 24.0 would fall back to `setup.py develop`, which
# skips build_py, so the op would only be compiled on first import.
"$VPY" -m pip install -q --no-build-isolation --use-pep517 -e .
"$VPY" - <<'PY'
import os
import tensorflow as tf
from lighthead.ops import active_implementation, build
lib = os.path.join(build.build_dir(build.DEFAULT_OUT), build.CPU_LIB)
assert os.path.exists(lib), 'pip install did not build %s' % lib
print('lighthead ops on TF %s: %s (%s)' % (tf.__version__, active_implementation(), lib))
PY
elapsed "lighthead installed, ops built"

export PYTHONDONTWRITEBYTECODE=1 TF_CPP_MIN_LOG_LEVEL=2
LIGHTHEAD_OTHER_PYTHON=$OTHER_PYTHON "$VPY" -m pytest -q -p no:cacheprovider tests
elapsed "tests under TF 1.15"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for cfg in experiments/*/config.py; do
    exp=$(dirname "$cfg")
    if ! "$VPY" tools/compat_dump.py save "$WORK/$(basename "$exp")" --exp "$exp" \
            >"$WORK/forward.log" 2>&1; then
        tail -n 60 "$WORK/forward.log"
        echo "tf115.sh: TEST graph + forward + save FAILED: $exp" >&2
        exit 1
    fi
    echo "TEST graph + forward + save OK: $exp"
done
elapsed "experiments: TEST graph, forward, checkpoint"

"$VPY" -m lighthead.datasets.synthetic --out "$WORK/shapes" --num-train 16 --num-val 4 >/dev/null
OUTPUT_DIR=$WORK/quickstart "$VPY" experiments/quickstart/train.py -d 0 --iters-per-epoch 10 \
    max_epoch=1 warm_iter=2 nr_dataflow=1 \
    "train_source='$WORK/shapes/annotations/train.json'" \
    "train_root_folder='$WORK/shapes/train'"
test -f "$WORK/quickstart/model_dump/epoch_1.ckpt.index" || {
    echo "tf115.sh: training did not write model_dump/epoch_1.ckpt" >&2; exit 1; }
elapsed "quickstart training (10 iterations)"
echo "== tf115: TF 1.15 job passed"
