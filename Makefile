# The two commands a new machine needs:
#   make run    install from the lock file, migrate, and serve on 127.0.0.1:8081 (embedded mode)
#   make test   install the dev tools and run ruff, mypy and the whole pytest suite
.PHONY: run test lint install install-dev lock train-reference clean

HOST ?= 127.0.0.1
PORT ?= 8081

install:
	scripts/bootstrap.sh

install-dev:
	scripts/bootstrap.sh --dev

run: install
	.venv/bin/reportscore serve --host $(HOST) --port $(PORT)

test: install-dev
	scripts/test.sh

lint: install-dev
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/vulture

lock:
	.tools/bin/uv lock

train-reference: install
	.venv/bin/reportscore train-reference

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache
