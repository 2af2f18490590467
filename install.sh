#!/usr/bin/env bash
# Install MARC into ./.venv (or $MARC_VENV): torch first and pinned, then MARC and its test tools.
#
# torch/torchvision: open_clip and timm (the PE-Core encoder) import torchvision, and PyPI's
# torchvision only imports beside its matching torch build, so both are pinned together here.
# Pinning them first keeps pip from resolving an unpinned torch (several GB) on its own.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${MARC_VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "MARC installed in $VENV (activate with: . $VENV/bin/activate)"
