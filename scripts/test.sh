#!/usr/bin/env bash
# The whole test suite: lint, format check, type check, dead code, then pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy" && mypy
echo "== vulture (dead code)" && vulture
echo "== pytest" && pytest "$@"
