#!/usr/bin/env bash
# Install Almanac and everything its tests need into ./.venv, then lint and run the whole suite.
# Arguments go to pytest, e.g. ./scripts/test.sh -k import
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -q "$@"
