#!/usr/bin/env bash
# Each feature's cost per email, alone and all together (bench/features.sh, the runs make bench's
# full-features scenario makes), in small, for comparing builds: a release build, its own durable
# Postgres, the counting sink, Missive (api, worker and webhooks in one process), then each run of
# FEATURE_RUNS (default "plain template dkim quota suppress webhooks full") with FEATURES_TOTAL
# (default 10000) emails. Prints one line per run: accept rate, then Missive's and Postgres's CPU
# per email. BENCH_MISSIVE measures another build (say, the commit before a change).
# PROBE_STATEMENTS=1 adds, per run, the statements that cost Postgres most (pg_stat_statements:
# calls, planning and execution time, buffers touched and dirtied, and WAL, each per email);
# PROBE_PERF=1 adds the functions Missive spent its CPU in (perf, sampling it through the run).
set -euo pipefail
BENCH_PG_STATEMENTS=${PROBE_STATEMENTS:-0}
source "$(dirname "$0")/common.sh"
source bench/features.sh
start_missive missive.log api worker webhooks
features_pids=("$missive_pid") features_db=$db_url
line=$(cat <<'PY'
import json, sys
r = json.loads(sys.stdin.read())
print(f"{r['run']:9} accept {r['per_second']:6,.0f}/s; CPU per email: Missive "
      f"{r['missive_cpu_us']:5.0f} µs, Postgres {r['pg_cpu_us']:5.0f} µs; webhooks verified: {r['webhooks']}")
PY
)

for run in $FEATURE_RUNS; do
  statements_reset
  if [ "${PROBE_PERF:-0}" = 1 ]; then
    perf record -q -F 999 -g -p "$missive_pid" -o "$run_dir/perf.data" 2>/dev/null &
    perf_pid=$!
  fi
  features_run probe "$run" | python3 -c "$line"
  top_statements "$FEATURES_TOTAL"
  if [ -n "${perf_pid:-}" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; perf_pid=
    perf report -q -i "$run_dir/perf.data" --no-children --sort dso,symbol --percent-limit 1.5 --stdio -g none 2>/dev/null \
      | grep -v '^$' | head -30 | sed 's/^/    /'
  fi
done
