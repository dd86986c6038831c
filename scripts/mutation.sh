#!/usr/bin/env bash
# Mutation testing (docs/testing.md): installs mutmut into ./.venv, then mutates the rules where a
# silent change hurts most and prints each group's score (scripts/mutation.py). An hour and a half
# on two cores, so not part of CI. Arguments go to scripts/mutation.py (groups, --report, --again).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,mutation]'
export ALMANAC_TEST_POSTGRES="${ALMANAC_TEST_POSTGRES:-postgresql://127.0.0.1:5432/test}"
exec .venv/bin/python scripts/mutation.py "$@"
