# Set-up and entry points. `make demo` and `make test` work on a fresh machine with Python 3.11:
# each creates .venv, installs the package with the pins of constraints.txt, then runs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= reports
# CI and `make test` run on 2 cores: keep BLAS/torch from oversubscribing them.
export OMP_NUM_THREADS ?= 2
export MPLBACKEND ?= Agg

.PHONY: all install demo test lint docs reproduce bench clean peers

all: test

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,distributed,docs]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/neuromodels data inspect sample:ventral
	$(BIN)/neuromodels data convert sample:ventral $(OUT)/demo/ventral.nc
	$(BIN)/neuromodels ceiling $(OUT)/demo/ventral.nc --out $(OUT)/demo/ceiling
	$(BIN)/neuromodels simulate --example feedforward --out $(OUT)/demo/snn
	$(BIN)/neuromodels theory depth-scales --sigma-b2 0.05 --out $(OUT)/demo/theory
	$(BIN)/neuromodels data inspect sample:retina
	# the main job, last: CNN and LN fitted to the virtual retina, ending with the per-cell table vs the ceiling
	$(BIN)/neuromodels fit --data sample:retina --model cnn,ln --out $(OUT)/demo/retina

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the style check first (seconds), then the fast suite, which also builds the docs (tests/test_docs.py)
test: lint
	$(BIN)/python -m pytest -m "not slow" -q

# The HTML site: README tour, guides, API reference from the docstrings, examples gallery (docs/conf.py). Warnings
# are errors, so a broken link or a stale API name fails; `make test` builds it too, in tests/test_docs.py.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -n -q -b html -d build/docs/doctrees docs build/docs/html
	@echo "open build/docs/html/index.html"

reproduce: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	@set -e; for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script; done

# The peers' environment .venv-peers (torch 2.14.1 + torchvision, avalanche-lib, torchattacks; about 7 GB, 4 min):
# the peer checks of docs/continual.md and docs/robustness.md run with .venv-peers/bin/python.
peers: .venv-peers/.installed

.venv-peers/.installed: benchmarks/peers/setup.sh benchmarks/peers/constraints.txt pyproject.toml
	bash benchmarks/peers/setup.sh

clean:
	rm -rf $(VENV) build *.egg-info $(OUT) docs/gallery docs/api/neuromodels*.rst
