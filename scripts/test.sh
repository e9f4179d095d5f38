#!/usr/bin/env bash
# The whole test suite (`make test`): a throwaway Postgres cluster for this run, the Python tools
# and Node packages the suite calls, the benchmark report's tests, then every test in the
# workspace. Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "$0")/.."

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/missive-test.XXXXXX")
cleanup() { scripts/pg.sh destroy "$run_dir/pg" >/dev/null 2>&1 || true; rm -rf "$run_dir"; }
trap cleanup EXIT

MISSIVE_TEST_DATABASE_URL=$(scripts/pg.sh start "$run_dir/pg" --port auto --fast --db postgres)
MISSIVE_TEST_PG_BIN=$(scripts/pg.sh bin)
MISSIVE_TEST_PYTHON=$(scripts/pyenv.sh)
MISSIVE_TEST_NODE=$(scripts/nodeenv.sh)
# Headless Chromium and its driver for the console's browser test: Debian's packages, installed
# here when missing, so nothing is downloaded while the tests run.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing chromium and chromium-driver" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
  else
    echo "test.sh: the console's browser test needs chromium and chromium-driver (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
fi
# swaks, a sending server's client for the receiving tests: Debian's package, when missing.
if ! command -v swaks >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing swaks" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swaks >&2 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swaks >&2; }
  else
    echo "test.sh: the receiving tests need swaks (apt-get install swaks)" >&2
    exit 1
  fi
fi
export MISSIVE_TEST_DATABASE_URL MISSIVE_TEST_PG_BIN MISSIVE_TEST_PYTHON MISSIVE_TEST_NODE

# The compiler-checked SQL's offline data must be what the migrations and statements make: a
# stale .sqlx/ fails here, naming the command that rewrites it.
scripts/sqlx.sh check

# The benchmark report's own tests (standard library only, well under a second).
python3 -m unittest discover -s bench -p 'test_*.py'

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --workspace --bins
export MISSIVE_BIN="$target_dir/debug/missive"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
