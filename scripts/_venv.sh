# Sourced by scripts/demo and scripts/test: make .venv (once) and install the project into it.
# Usage: . scripts/_venv.sh [EXTRAS]   (EXTRAS as pip spells them, e.g. "dev"; none: "")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: trio-graph-scheduler needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${1:+[$1]}"
