# make test: install into .venv, lint, type-check, the wheel check, the docs, the test suite and the tutorial
# notebooks (what CI runs).
# make docs: the documentation site, built strictly (any warning fails) into site/.
# make demo: synthetic data, the demo model, both CLIs and an evaluation report.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser test lint typecheck wheel-check docs demo bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps quantus==0.6.0  # tests only: see requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PY) -m ruff check xai tests bench docs/hooks.py notebooks
	$(PY) -m ruff format --check xai tests bench docs/hooks.py notebooks

typecheck: install
	$(PY) -m mypy xai tests

wheel-check: install
	tests/check_wheel.sh $(PY)

# NO_MKDOCS_2_WARNING: mkdocs-material prints a notice about its successor on every build (not a build warning)
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# the explorer's tests (tests/test_explorer.py) need Chromium and its driver: installed here where apt-get
# exists and we are root; elsewhere, without them, those tests skip and say so
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			apt-get install -y -q chromium chromium-driver || (apt-get update -q && apt-get install -y -q chromium chromium-driver); \
		else echo "no chromium: the explorer's browser tests will skip"; fi; \
	fi

test: lint typecheck wheel-check docs browser
	$(PY) -m pytest -q -n 2 --dist loadfile tests --nbmake notebooks

DEMO_DATA := data/demo
DEMO_CKPT := best_model_FPN.safetensors

$(DEMO_DATA)/dataset_split.csv: | install
	$(PY) -m xai.synth --out $(DEMO_DATA) --n 240 --seed 0

$(DEMO_CKPT): $(DEMO_DATA)/dataset_split.csv
	$(PY) -m xai.train --config demo --out $(DEMO_CKPT)

demo: install $(DEMO_CKPT)
	$(PY) visualize_scorecam.py --model_path $(DEMO_CKPT) --config demo
	$(PY) visualize_pretrained_model.py --model_path $(DEMO_CKPT) --config demo
	$(PY) visualize_scorecam.py --model_path $(DEMO_CKPT) --config demo --compare --evaluate --num_samples 2 \
		--eval_steps 5 --no_road --stability_samples 0 --sanity_samples 0 --output_dir comparison_visualizations
	@echo "demo done: open the explorers scorecam_visualizations/index.html, pretrained_visualizations/index.html,"
	@echo "           comparison_visualizations/index.html (static galleries: gallery.html beside each) and the"
	@echo "           faithfulness report comparison_visualizations/report.html"

bench: install
	$(PY) bench/bench_scorecam.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
