#!/usr/bin/env bash
# NNI 3.0's PolicyBasedRL strategy needs tianshou 0.4.x and gym, whose declared dependencies
# conflict with today's stack (numpy 2, torch 2.14). For benchmarks only, this installs them
# *beside* the environment, without their dependency resolution, into build/nni_policy_rl
# (git-ignored); experiments/bench_nb201_search.py adds that folder to sys.path when it exists.
# These exact versions were checked to import and run NNI's PolicyBasedRL here.
set -euo pipefail
cd "$(dirname "$0")/.."
target=build/nni_policy_rl
python3 -m pip install --quiet --target "$target" --no-deps \
  tianshou==0.4.11 gym==0.23.1 gym-notices==0.1.0 h5py==3.16.0 numba==0.68.1 llvmlite==0.50.0 \
  tensorboard==2.21.0 tensorboard-data-server==0.7.2 protobuf==7.36.2 absl-py==2.5.1 markdown==3.11.3 \
  werkzeug==3.1.9 grpcio==1.85.1
PYTHONPATH="$target" python3 -W ignore -c "import nni.nas.strategy._rl_impl" && echo "NNI PolicyBasedRL is usable from $target"
