# Set-up and routine jobs. `make install` creates .venv/ with the pinned CPU torch.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: install run test demo bench clean

$(BIN)/topodiff: pyproject.toml
	$(PY) -m venv $(VENV)
	# CC=g++: GPAW (the `dft` extra) compiles C++17 sources; gcc as its C compiler fails
	CC=g++ $(BIN)/pip install -q -e '.[test,dft]'
	touch $(BIN)/topodiff

install: $(BIN)/topodiff

run: install
	$(BIN)/topodiff pipeline --out runs/quickstart --overwrite --condition catalogue_class=ti \
		--sampler predictor_noise_scale=0.7 --sampler corrector_noise_scale=0.5 \
		--formulas default --templates mp20 --prescreen 4 --prescreen-novel

test: install
	$(BIN)/python -m pytest -q --durations=20

demo: install
	$(BIN)/topodiff demo --out runs/demo --overwrite

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
