# emolens: the two commands of the README.
#   make demo  - create .venv, install emolens, analyse the bundled example photo
#   make test  - create .venv with the [train], [serve], [batch] and [dev] extras, fetch the filmed clips, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out

.PHONY: demo test clean help

help:
	@echo "make demo   install emolens in $(VENV) and annotate examples/astronaut.jpg into $(OUT)/"
	@echo "make test   install emolens[train,serve,batch,dev] in $(VENV) and run pytest"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml src/emolens/testing/footage.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,serve,batch,dev]'
	$(BIN)/python -m emolens.testing.footage fetch
	touch $@ $(VENV)/.installed-runtime

demo: $(VENV)/.installed-runtime
	@rm -f $(OUT)/astronaut.jpg   # the demo's own output: copies written before the "annotated copy" note are not replaced
	$(BIN)/emolens predict examples/astronaut.jpg --annotate $(OUT)
	@echo "annotated picture: $(OUT)/astronaut.jpg"

test: $(VENV)/.installed-dev
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info src/*.egg-info
