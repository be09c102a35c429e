# Two commands for a newcomer (both work offline once the packages are installed):
#   make demo   set up .venv and predict on the shipped sample frame with the default model
#   make test   set up .venv with the test tools; style (ruff) and security (bandit)
#               checks, then the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Keep the machine's torch 2.13.0 CPU build; see constraints.txt.
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
# Never reach a model hub or PyPI at run time.
export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: demo test serve install clean

$(BIN)/.installed: pyproject.toml requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements.txt -e '.[test,dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/taseg predict data/samples/KA1_DJI_0_0095_R.npy.lz4 --out predictions/

serve: $(BIN)/.installed
	$(BIN)/deepaas-run --listen-ip 0.0.0.0 --listen-port 5000 --workers 2

test: $(BIN)/.installed
	$(BIN)/ruff check thermal_anomaly_segmenter api tests cli.py benchmarks heldout
	$(BIN)/bandit -q -r thermal_anomaly_segmenter api -x tests
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

clean:
	rm -rf $(VENV) predictions .pytest_cache
