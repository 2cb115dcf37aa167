#!/usr/bin/env bash
# Create .venv (Python 3.9+), install TensorFlow (CPU wheel) and the requirements, then install
# lighthead, which compiles the PSAlignPool op against that TensorFlow. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    $PY -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip "setuptools>=64" wheel
.venv/bin/pip install -q -r requirements.txt
.venv/bin/pip install -q --no-build-isolation -e .
.venv/bin/python -c "import lighthead.ops as o; print('lighthead ops:', o.active_implementation())"
