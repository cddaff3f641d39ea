# Everything runs from the project's own virtual environment, created on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv demo zoo test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

demo: venv
	$(BIN)/python -m tfjsigr.pipeline.demo

# The default zoo (plain, igr, jr, jsigr, fgsm_rs, pgd_at) on Fashion-MNIST, quick settings.
zoo: venv
	$(BIN)/tfjsigr zoo build --quick

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check tfjsigr tests benchmarks cli.py

bench: venv
	$(BIN)/python benchmarks/train_step.py

clean:
	rm -rf $(VENV) build *.egg-info
