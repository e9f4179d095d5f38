#!/usr/bin/env bash
# The fairness scenario of `make bench` alone (see bench/fairness.sh): a release build, its own
# durable Postgres, the counting sink, Missive with the api and worker roles, and tenant A's own
# slow server; prints B's accept-to-delivery times alone and beside A's backlog.
set -euo pipefail
source "$(dirname "$0")/common.sh"
source bench/fairness.sh
export MISSIVE_TENANT_RELAY_MAX_CONNECTIONS=${BENCH_TENANT_RELAY_CONNECTIONS:-2}
results="$run_dir/results.jsonl"
start_missive missive.log api worker
fairness
cat "$results"
