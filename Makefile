# kiqpy developer tasks. `make` alone lists them; CI runs `bash .ci/run` (make test, make lint).
#
# Needs only python3 (3.10+) and, for the tests and the demo, a redis-server binary, which
# `make redis` installs with apt-get when run as root.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; pip runs again only when pyproject.toml changes.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Seconds of chaos for `make soak` (make soak DURATION=60).
DURATION ?= 300
# `make bench-compare`: one venv per Python system under .venv-compare/ (name=pip requirement),
# each with redis-py's hiredis parser as kiqpy has, so kiqpy's own .venv stays clean. Flags for
# bench/compare: make bench-compare COMPARE_ARGS='--quick --only kiqpy,celery'.
COMPARE_VENVS := .venv-compare
COMPARE_SYSTEMS := dramatiq=dramatiq[redis] celery=celery[redis] rq=rq huey=huey arq=arq
COMPARE_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install redis browser test lint demo bench soak clean sidekiq compare-systems \
	bench-compare

help: ## list the targets
	@echo "usage: make <target>   (PY=$(PY); PYTEST_ARGS='...' is passed to pytest)"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-15s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install kiqpy editable with its dev tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# The tests start their own redis-server (private port, temp dir), so only the binary is needed.
redis: ## make sure a redis-server binary is installed (apt-get when root)
	@if command -v redis-server >/dev/null 2>&1; then \
		echo "redis-server: $$(command -v redis-server)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "redis-server is missing; installing it with apt-get"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null && \
		{ command -v redis-server || { echo "error: apt-get gave no redis-server" >&2; exit 1; }; }; \
	else \
		echo "error: redis-server is not installed (make installs it only as root, with apt-get)." >&2; \
		echo "Install it, then rerun make:" >&2; \
		echo "  Debian/Ubuntu: sudo apt-get install redis-server" >&2; \
		echo "  macOS:         brew install redis" >&2; \
		exit 1; \
	fi

# tests/test_web_browser.py drives Debian's chromium with Playwright (never `playwright install`:
# nothing is downloaded at run time). Without it, and not root, those tests skip, or fail under
# CI=true.
browser: ## make sure /usr/bin/chromium is installed for the browser tests (apt-get when root)
	@if [ -x /usr/bin/chromium ]; then \
		echo "chromium: /usr/bin/chromium"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "chromium is missing; installing it with apt-get"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && \
		{ [ -x /usr/bin/chromium ] || { echo "error: apt-get gave no /usr/bin/chromium" >&2; exit 1; }; }; \
	else \
		echo "warning: /usr/bin/chromium is missing and make installs it only as root, so the" >&2; \
		echo "browser tests will skip (and fail under CI=true). Debian/Ubuntu: sudo apt-get install chromium" >&2; \
	fi

# tests/test_sidekiq_interop.py runs a real Ruby Sidekiq (Debian's ruby-sidekiq, 6.4) next to a
# kiqpy worker. Without it, and not root, those tests skip, or fail under CI=true.
# Debian's ruby-sidekiq (6.4) for the interop tests and bench-compare; ruby-hiredis lets
# bench-compare's Sidekiq use the hiredis driver, as Sidekiq users in production do.
sidekiq: ## make sure Debian's ruby-sidekiq (and ruby-hiredis) are installed (apt-get when root)
	@if command -v sidekiq >/dev/null 2>&1 && dpkg -s ruby-hiredis >/dev/null 2>&1; then \
		echo "sidekiq: $$(command -v sidekiq) (ruby-sidekiq $$(dpkg-query -W -f='$${Version}' ruby-sidekiq 2>/dev/null))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "ruby-sidekiq or ruby-hiredis is missing; installing them with apt-get"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ruby-sidekiq ruby-hiredis >/dev/null && \
		{ command -v sidekiq || { echo "error: apt-get gave no sidekiq command" >&2; exit 1; }; }; \
	else \
		echo "warning: sidekiq is missing and make installs it only as root, so the interop" >&2; \
		echo "tests will skip (and fail under CI=true). Debian/Ubuntu: sudo apt-get install ruby-sidekiq ruby-hiredis" >&2; \
	fi

test: install redis browser sidekiq ## run the test suite (PYTEST_ARGS='-m "not slow"' skips the slow ones)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# mypy cannot see through the editable install's import hook, which maps `middleware/` to
# `kiqpy_middleware`; a symlink on MYPYPATH gives it the same name ([tool.mypy] packages).
# Its findings in middleware/ are therefore reported under .venv/mypy-path/kiqpy_middleware/.
# Both linters always run, so one CI log shows every finding; either one failing fails lint.
# lint-imports checks the layer contract in pyproject.toml ([tool.importlinter]): no import
# cycles, and no module importing from a layer above its own (docs/architecture.md).
lint: install ## ruff, mypy, and the import-layer contract (lint-imports)
	@mkdir -p $(VENV)/mypy-path && ln -sfn ../../middleware $(VENV)/mypy-path/kiqpy_middleware
	@status=0; \
	echo "$(BIN)/ruff check kiqpy middleware tests examples bench"; \
	$(BIN)/ruff check kiqpy middleware tests examples bench || status=1; \
	echo "MYPYPATH=$(VENV)/mypy-path $(BIN)/mypy"; \
	MYPYPATH=$(VENV)/mypy-path $(BIN)/mypy || status=1; \
	echo "$(BIN)/lint-imports"; \
	$(BIN)/lint-imports --no-cache || status=1; \
	exit $$status

demo: install redis ## enqueue the example jobs and show what lands in Redis
	$(BIN)/python examples/demo.py

# make bench BENCH_ARGS="--quick --throughput", or "--cluster" for one node next to a 3-shard
# Redis Cluster with the Redis CPU per job (bench/bench.py --help).
bench: install redis ## measure the performance targets of docs/architecture.md (bench/bench.py)
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

# A system that does not install is only warned about here: bench-compare reports it with its
# error and measures the others.
compare-systems: ## make .venv-compare/<system> for the Python systems of bench-compare (pip)
	@for spec in $(COMPARE_SYSTEMS); do \
		name=$${spec%%=*}; requirement=$${spec#*=}; venv=$(COMPARE_VENVS)/$$name; \
		test -f $$venv/.installed && continue; \
		echo "installing $$requirement into $$venv"; \
		{ test -x $$venv/bin/python || $(PY) -m venv $$venv; } && \
		$$venv/bin/python -m pip install --quiet "$$requirement" "redis[hiredis]" && \
		touch $$venv/.installed || \
		echo "warning: $$requirement did not install; bench-compare reports it and goes on" >&2; \
	done

bench-compare: install redis sidekiq compare-systems ## kiqpy against Sidekiq, Dramatiq, Celery, RQ, Huey, arq (bench/compare)
	$(BIN)/python -m bench.compare $(COMPARE_ARGS)

soak: install redis ## DURATION s (300) of kill -9 and a Redis crash under load; 0 lost or it fails
	$(BIN)/python bench/soak.py --duration $(DURATION)

clean: ## remove .venv, build artefacts, caches and test output
	rm -rf $(VENV) $(COMPARE_VENVS) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis \
		test-output .demo-redis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
