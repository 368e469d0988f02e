# Entry points. `make install` builds .venv; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUNDLE := var/bundles/default
DATA := data/ratings

.PHONY: install demo test test-fast screenshots lint format bundle evaluate bench bench-full bench-setup clean

install: $(STAMP)

# torch first and pinned: anything looser pulls a multi-GB CUDA build on a CPU machine.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The whole product on this machine: SQLite and the embedded broker in var/, demo users, the
# default bundle (trained unless built), a few thousand items, a worker and the web server.
# Ctrl-C stops it; a second run reuses everything. DEMO_PORT picks the port (8000).
demo: $(STAMP)
	$(BIN)/python manage.py demo

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

# The README's pictures under docs/, taken by the browser tests.
screenshots: $(STAMP)
	UPDATE_SCREENSHOTS=1 $(BIN)/pytest tests/moderation/review/test_browser.py \
		tests/moderation/dashboards/test_browser.py tests/moderation/training/test_browser.py \
		tests/moderation/dashboards/test_quality_browser.py \
		tests/moderation/review/test_grid_browser.py tests/moderation/model_audit/test_browser.py \
		tests/moderation/test_any_screen.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The default bundle: settings chosen by 5-fold cross-validation over train + val (the
# selection log goes into the manifest), experts stacked out of fold, val for early stopping,
# the test split scored once at the end and recorded in the manifest.
bundle: $(STAMP)
	$(BIN)/rating-models train --data $(DATA)/train.jsonl --val $(DATA)/val.jsonl \
		--test $(DATA)/test.jsonl --out $(BUNDLE) --preset fast --select

evaluate: $(STAMP)
	$(BIN)/rating-models evaluate $(BUNDLE) $(DATA)/test.jsonl --by source

# Benchmarks (bench/*.py): each prints its figures against a baseline measured in the same run
# and writes bench/results/<name>.json. `make bench` takes under 10 minutes here; `bench-full`
# runs the sizes BENCHMARKS.md's targets name (into bench/results/full/); `bench-setup` times
# `make bundle` and a first and second `make demo` in a fresh clone of this checkout.
BENCHES := inference queue ingest ingest_latency first_rate retrain pages learning_curve \
	label_errors review_speed

bench: $(STAMP) $(BUNDLE)/manifest.json
	set -e; for b in $(BENCHES); do $(BIN)/python bench/$$b.py; done

bench-full: $(STAMP) $(BUNDLE)/manifest.json
	set -e; for b in $(BENCHES); do $(BIN)/python bench/$$b.py --full; done

bench-setup: $(STAMP)
	$(BIN)/python bench/setup.py

$(BUNDLE)/manifest.json:
	$(MAKE) bundle

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
