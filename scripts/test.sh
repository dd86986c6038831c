#!/usr/bin/env bash
# Install Almanac and everything its tests need (Python packages into ./.venv, Debian's Chromium
# for the browser tests, nginx for the deployment test, slapd for the directory tests, a
# PostgreSQL to run every test on it too), then lint, type-check and run the whole suite. Arguments go to pytest, e.g. ./scripts/test.sh -k import
#
# PostgreSQL: the one at $ALMANAC_TEST_POSTGRES (default postgresql://127.0.0.1:5432/test) when it
# answers; otherwise Debian's postgresql is installed and a private cluster is started in a
# temporary folder on a free port, and stopped (by its PID file) when the tests end.
# OpenLDAP: the one at $ALMANAC_TEST_LDAP when set; otherwise the tests start Debian's slapd in a
# temporary folder on a free port and stop it by its PID (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_install() {
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" > /dev/null
}
[ -x /usr/bin/chromium ] || apt_install chromium  # the browser tests drive Debian's Chromium
[ -x /usr/sbin/nginx ] || apt_install nginx-light openssl  # docs/deploy.md's proxy, run by a test
[ -x /usr/sbin/slapd ] || apt_install slapd  # the account directory the LDAP tests run
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

answers() {  # does a PostgreSQL answer at this URL?
    .venv/bin/python -c 'import asyncio, sys, asyncpg
async def probe():
    await (await asyncpg.connect(sys.argv[1], timeout=5)).close()
asyncio.run(probe())' "$1" 2> /dev/null
}
export ALMANAC_TEST_POSTGRES="${ALMANAC_TEST_POSTGRES:-postgresql://127.0.0.1:5432/test}"
if ! answers "$ALMANAC_TEST_POSTGRES"; then
    echo "no PostgreSQL at $ALMANAC_TEST_POSTGRES: starting a private cluster" >&2
    ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || apt_install postgresql
    bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
    cluster=$(mktemp -d /tmp/almanac-pg.XXXXXX)
    port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner=(); owner=$(id -un)
    if [ "$(id -u)" -eq 0 ]; then  # initdb refuses to run as root: the cluster belongs to postgres
        owner=postgres; chown postgres "$cluster"; as_owner=(runuser -u postgres --)
    fi
    "${as_owner[@]}" "$bin/initdb" -D "$cluster/data" -A trust -U "$owner" -E UTF8 > "$cluster/initdb.log"
    "${as_owner[@]}" "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $cluster" start > /dev/null
    trap '"${as_owner[@]}" "$bin/pg_ctl" -D "$cluster/data" -m fast stop > /dev/null; rm -rf "$cluster"' EXIT
    "${as_owner[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$owner" test
    export ALMANAC_TEST_POSTGRES="postgresql://$owner@127.0.0.1:$port/test"
    answers "$ALMANAC_TEST_POSTGRES" || { echo "the private PostgreSQL does not answer" >&2; exit 1; }
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # the files and strictness are in setup.cfg
.venv/bin/python -m pytest -q "$@"
