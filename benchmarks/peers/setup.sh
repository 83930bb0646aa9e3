#!/usr/bin/env bash
# The peers' environment, .venv-peers/ (git-ignored): torch 2.14.1 + torchvision 0.29.1, avalanche-lib 0.6.0
# (Synaptic Intelligence plugin, issue 14) and torchattacks 3.5.1 (FGSM/BIM/PGD, issue 15), with this package
# installed editable, all pinned by benchmarks/peers/constraints.txt. The main .venv is not touched: the peers
# need torchvision, which does not import beside its torch 2.13.0 CPU build.
#
#   make peers                     # or: bash benchmarks/peers/setup.sh
#   .venv-peers/bin/python -m pytest -q tests/fitting/test_continual_si.py tests/analysis/test_robustness.py
#   OMP_NUM_THREADS=1 .venv-peers/bin/python benchmarks/bench_continual.py
#   OMP_NUM_THREADS=1 .venv-peers/bin/python benchmarks/bench_robustness.py
#
# Needs Python 3.11 (pip takes the torch/torchvision pair from this machine's disk for 3.11 on x86_64; elsewhere
# pip downloads a CUDA build of several GB) and about 7 GB of disk (6.2 GB installed). Measured here: 3 min 52 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=.venv-peers
CONSTRAINTS=benchmarks/peers/constraints.txt
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$CONSTRAINTS")

if [ ! -x "$VENV/bin/python" ]; then
    free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
    if [ "$free_kb" -lt 7000000 ]; then
        echo "setup.sh: $VENV needs about 7 GB of free disk, $((free_kb / 1024 / 1024)) GB free here" >&2
        exit 1
    fi
    "$PYTHON" -m venv "$VENV"
fi
"${PIP[@]}" torch torchvision avalanche-lib torchattacks pytest hypothesis
"${PIP[@]}" -e .
"$VENV/bin/python" -W ignore -c "import torch, torchvision, avalanche, torchattacks, neuromodels; print('peers:', 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'avalanche-lib', avalanche.__version__, 'torchattacks', torchattacks.__version__)"
touch "$VENV/.installed"
