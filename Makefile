# Every target creates .venv itself and installs what it needs, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast check lint typecheck install install-service uninstall-service bench venv mosquitto audio cluster clean

demo: $(STAMP)
	$(BIN)/python -m demo

test: $(STAMP) mosquitto audio cluster check
	$(BIN)/pytest

test-fast: $(STAMP) check
	$(BIN)/pytest -m "not tensorflow and not slow"

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check agent convert fleet demo tests bench models scripts
	$(BIN)/ruff format --check agent convert fleet demo tests bench models scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# make bench [BENCH="agent bundle"]: run benchmarks, rewrite their sections of docs/benchmarks.md
bench: $(STAMP) mosquitto
	$(BIN)/python -m bench $(BENCH)

# Property-based fuzzing of every parser of outside bytes, FUZZ_EXAMPLES per parser (make test: 150).
FUZZ_EXAMPLES ?= 5000
.PHONY: fuzz
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q tests/fuzz

# Soak: the agent on a looping video with periodic broker kills; RSS growth after warm-up < 5 MB.
MINUTES ?= 30
.PHONY: soak heavy
soak: $(STAMP) mosquitto
	$(BIN)/python -m bench.soak --minutes $(MINUTES)

# The full-size fault tests (make test runs their reduced forms).
heavy: $(STAMP) mosquitto
	$(BIN)/pytest -q --heavy -m heavy -s

# Device install: the device wheel (agent/ and edge-agent only: no convert/, fleet/, demo/, no
# TensorFlow), built by scripts/device_wheel.py into dist/device/. VENV=/opt/edge-agent on a Pi;
# DEVICE_EXTRAS=device,video adds OpenCV (RTSP/H.264, non-MJPEG video; ~153 MB);
# DEVICE_EXTRAS=tflite-runtime for the legacy runtime. The first pip replaces an older install.
DEVICE_EXTRAS ?= device
install:
	@scripts/bootstrap.sh $(PYTHON) $(VENV)
	@wheel=$$($(BIN)/python scripts/device_wheel.py dist/device) && \
	  $(BIN)/pip install -q --force-reinstall --no-deps "$$wheel" && \
	  $(BIN)/pip install -q "$$wheel[$(DEVICE_EXTRAS)]" && \
	  echo "installed $$wheel[$(DEVICE_EXTRAS)] into $(VENV)"

# The systemd service (run as root): the venv /opt/edge-agent with the device wheel of this
# checkout (as make install; DEVICE_EXTRAS), config skeleton, device key, credentials, unit.
# DESTDIR installs under another root;
# AGENT_BIN=path runs an existing edge-agent instead of making the venv (docs/operations.md).
install-service:
	DESTDIR="$(DESTDIR)" AGENT_BIN="$(AGENT_BIN)" PYTHON="$(PYTHON)" DEVICE_EXTRAS="$(DEVICE_EXTRAS)" \
	  systemd/install.sh install

uninstall-service:
	DESTDIR="$(DESTDIR)" systemd/install.sh uninstall $(if $(PURGE),--purge)

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	@scripts/bootstrap.sh $(PYTHON) $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

mosquitto:
	@scripts/ensure-mosquitto.sh

audio:
	@scripts/ensure-audio.sh

cluster:
	@scripts/ensure-cluster.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info dist/device
