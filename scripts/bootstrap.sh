#!/usr/bin/env bash
# Create .venv from the lock file. Usage: scripts/bootstrap.sh [--dev] [--extra NAME]...
#   --dev          also install the test/lint tools (the "dev" dependency group) and every optional extra
#   --extra NAME   also install the optional extra NAME (e.g. tensorflow, for Keras models); runtime only otherwise
# Needs only python3 (>= 3.11) with venv; uv itself is pinned and installed into .tools/.
# UV_PROJECT_ENVIRONMENT, when set, names another directory for the environment (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
PYTHON="${PYTHON:-python3}"

dev=0
extras=()
while (($#)); do
    case "$1" in
        --dev) dev=1 ;;
        --extra)
            [[ $# -ge 2 && -n "$2" ]] || { echo "bootstrap: --extra needs a name (e.g. --extra tensorflow)" >&2; exit 2; }
            extras+=(--extra "$2")
            shift
            ;;
        *) echo "usage: scripts/bootstrap.sh [--dev] [--extra NAME]..." >&2; exit 2 ;;
    esac
    shift
done

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
if ((dev)); then
    args+=(--all-extras --group dev)
else
    args+=(--no-dev --inexact ${extras[@]+"${extras[@]}"})
fi
UV_PROJECT_ENVIRONMENT="${UV_PROJECT_ENVIRONMENT:-.venv}" .tools/bin/uv "${args[@]}"
