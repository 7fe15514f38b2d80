# make test: install into .venv and run the suite. make demo: synthetic data, demo model, both CLIs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q tests

DEMO_DATA := data/demo
DEMO_CKPT := best_model_FPN.pth

$(DEMO_DATA)/dataset_split.csv: | install
	$(PY) -m xai.synth --out $(DEMO_DATA) --n 240 --seed 0

$(DEMO_CKPT): $(DEMO_DATA)/dataset_split.csv
	$(PY) -m xai.train --config configs/demo.yaml --out $(DEMO_CKPT)

demo: install $(DEMO_CKPT)
	$(PY) visualize_scorecam.py --model_path $(DEMO_CKPT)
	$(PY) visualize_pretrained_model.py --model_path $(DEMO_CKPT)
	$(PY) visualize_scorecam.py --model_path $(DEMO_CKPT) --compare --output_dir comparison_visualizations
	@echo "demo done: open scorecam_visualizations/index.html, pretrained_visualizations/index.html, comparison_visualizations/index.html"

bench: install
	$(PY) bench/bench_scorecam.py

clean:
	rm -rf $(VENV) .pytest_cache
