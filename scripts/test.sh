#!/usr/bin/env bash
# Install Almanac and everything its tests need (Python packages into ./.venv, Debian's Chromium
# for the browser tests), then lint, type-check and run the whole suite.
# Arguments go to pytest, e.g. ./scripts/test.sh -k import
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then  # the browser tests drive Debian's Chromium
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium > /dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # the files and strictness are in setup.cfg
exec .venv/bin/python -m pytest -q "$@"
