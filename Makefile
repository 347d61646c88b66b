# Two entry points for a fresh machine: `make demo` and `make test`.
# TORCH_SPEC is the torch requirement installed first; override it to bring your own build,
# e.g. `make test TORCH_SPEC="torch==2.5.1"` or TORCH_SPEC="" to keep the torch you have.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.chronoclip-installed

.PHONY: install demo test lint tiny-world clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: install
	$(BIN)/chronoclip demo --out runs/demo

test: install
	$(BIN)/python -m pytest -q

# Rebuild the shipped tiny-world preset (src/chronoclip/backbones/weights/tiny-world) from its recipe.
tiny-world: install
	$(BIN)/chronoclip backbone build-tiny-world --work runs/tiny-world-build

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache
