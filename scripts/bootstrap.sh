#!/usr/bin/env bash
# Create .venv from the lock file. Usage: scripts/bootstrap.sh [--dev]
#   --dev   also install the test/lint tools (the "dev" dependency group)
# Needs only python3 (>= 3.11) with venv; uv itself is pinned and installed into .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "reportscore needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1)." >&2
    echo "Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
fi

if [[ ! -x .tools/bin/uv ]] || [[ "$(.tools/bin/uv --version | awk '{print $2}')" != "$UV_VERSION" ]]; then
    echo "bootstrap: installing uv $UV_VERSION into .tools/" >&2
    "$PYTHON" -m venv .tools
    .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

args=(sync --frozen --python "$PYTHON")
if [[ "${1:-}" == "--dev" ]]; then
    args+=(--all-extras --group dev)
else
    args+=(--no-dev --inexact)
fi
UV_PROJECT_ENVIRONMENT=.venv .tools/bin/uv "${args[@]}"
