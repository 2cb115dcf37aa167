#!/usr/bin/env bash
# The README's first command: set up .venv and the op, then train and evaluate the quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
.venv/bin/python tools/quickstart.py "$@"
