#!/usr/bin/env bash
# Install Almanac into ./.venv and start it on the embedded store (SQLite under ./data/).
# Arguments go to `run.py serve`, e.g. ./scripts/serve.sh --demo --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/python run.py serve "$@"
