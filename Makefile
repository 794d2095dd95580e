# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
#
# Packages are installed by uv (much faster than pip), which the Makefile installs into the
# virtual environment with pip. uv is given pip's find-links (PIP_FIND_LINKS and pip's config),
# so torch comes from where `pip install torch==2.13.0` takes it on this machine (the CPU build);
# an unpinned torch would pull a CUDA build. `make demo` installs only what the demo needs
# (the `demo` extra); `make test` installs every extra and the test tools.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# torch==2.13.0 is added to an install only when the venv has no torch yet (evaluated then).
TORCH = $(shell $(BIN)/python -c "import torch" 2>/dev/null || echo torch==2.13.0)
FIND_LINKS := $(sort $(PIP_FIND_LINKS) $(shell $(PY) -m pip config get global.find-links 2>/dev/null))
# Modules are compiled to bytecode at install time, in parallel (pip does it too; otherwise the
# first `cadence demo` would spend most of its time compiling torch, scikit-learn and mlflow).
UV_INSTALL := $(UV) pip install --quiet --compile-bytecode --python $(BIN)/python \
	$(addprefix --find-links ,$(FIND_LINKS))
# Trust the system's certificates, as pip does (uv otherwise has its own list).
export UV_NATIVE_TLS ?= 1

.PHONY: setup demo test lint bench bench-peers clean

# A venv without pip is made at once; the system's pip puts uv in it (pip >= 22.3 has --python;
# an older one gets a venv with pip first), then uv adds pip for your own use.
$(VENV)/.uv:
	test -x $(BIN)/python || $(PY) -m venv --without-pip $(VENV)
	$(PY) -m pip --python $(BIN)/python install --quiet uv || \
		{ $(PY) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv; }
	$(UV) pip install --quiet --python $(BIN)/python pip
	touch $@

# One uv run resolves, downloads and installs torch and everything else in parallel.
$(VENV)/.installed-demo: pyproject.toml $(VENV)/.uv
	$(UV_INSTALL) $(TORCH) -e ".[demo]"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.uv
	$(UV_INSTALL) $(TORCH) -e ".[all,dev]"
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed-demo
	$(BIN)/cadence demo

test: $(VENV)/.installed
	$(BIN)/ruff check cadence tests examples benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed
	$(BIN)/ruff check cadence tests examples benchmarks

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.run

bench-peers: $(VENV)/.installed
	benchmarks/peers/setup.sh
	benchmarks/peers/.venv/bin/python -m benchmarks.peers.run

clean:
	rm -rf $(VENV) build *.egg-info
