# Two commands for users: `make demo` and `make test`. Both set up .venv first.
# Every step is stamped, so a second run with nothing changed is quick.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FORCE_CUDA ?= 0
BUILD_DIR := build
VENV_STAMP := $(VENV)/.requirements-stamp
EXT_STAMP := $(BUILD_DIR)/.ext-stamp-cuda$(FORCE_CUDA)
CSRC := $(shell find lib/pydetectron/csrc -type f 2>/dev/null)
PYTEST_ARGS ?=
# `make demo RETRAIN=1` trains again; DEMO_ARGS go to tools/demo.py (e.g. DEMO_ARGS="--threads 2").
RETRAIN ?= 0
DEMO_ARGS ?=
DEMO_FLAGS = $(if $(filter 1 yes true,$(RETRAIN)),--retrain) $(DEMO_ARGS)

.PHONY: setup build lint test demo demo-keypoints clean

setup: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

build: $(EXT_STAMP)

$(EXT_STAMP): $(VENV_STAMP) setup.py $(CSRC)
	mkdir -p $(BUILD_DIR)
	rm -f $(BUILD_DIR)/.ext-stamp-cuda*
	@echo "building pydetectron._C (FORCE_CUDA=$(FORCE_CUDA)); log in $(BUILD_DIR)/build.log"
	@FORCE_CUDA=$(FORCE_CUDA) MAX_JOBS=$${MAX_JOBS:-2} $(PY) -m pip install -v --no-build-isolation --no-deps -e . \
		> $(BUILD_DIR)/build.log 2>&1 || (tail -n 60 $(BUILD_DIR)/build.log; exit 1)
	@grep -o 'pydetectron setup: building _C[^"]*' $(BUILD_DIR)/build.log | head -n 1
	@echo "nvcc compiled $$(grep -c '/bin/nvcc ' $(BUILD_DIR)/build.log) CUDA source(s)"
	$(PY) -c "import pydetectron._C as C; print('pydetectron._C:', C.build_info())"
	touch $@

lint: $(VENV_STAMP)
	$(PY) -m ruff check lib tools tests setup.py

test: build lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Train, evaluate and draw Mask R-CNN on the shapes data (Keypoint R-CNN for demo-keypoints);
# a second run reuses the trained checkpoint.
demo: build
	$(PY) tools/demo.py mask $(DEMO_FLAGS)

demo-keypoints: build
	$(PY) tools/demo.py keypoints $(DEMO_FLAGS)

clean:
	rm -rf $(BUILD_DIR) lib/pydetectron/*.so
