#!/usr/bin/env bash
# The GPU path in one short run (bench/gpu_check.py): on a CUDA machine it trains the default MNIST
# variant for a fixed time (--train-seconds, 240 by default), exports, generates 1M images with ONNX
# Runtime's CUDA provider and prints `RESULT gpu_check device=cuda ...`, in well under 8 minutes;
# without a GPU (or with --tiny) the same steps run at a tiny size on CPU in seconds.
#
# On the lent device machine (PyTorch there, no Ray/MLflow/onnxruntime-gpu/pydantic): carry wheels in
# .whl (see bench/RESULTS.md / the device README) and they are installed to /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export GENFACTORY_ORT_STRICT=${GENFACTORY_ORT_STRICT:-0}
exec "$PY" bench/gpu_check.py "$@"
