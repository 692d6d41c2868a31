#!/usr/bin/env bash
# The quick version of every performance benchmark, one after the other, in a few minutes (issue 11, item 7):
#
#   bash benchmarks/quick.sh            # writes benchmarks/results/quick-<UTC time>/summary.md
#
# Each benchmark runs smaller than its full form (fewer tasks, shorter windows) and, as in its full form, prints
# its figure beside the baseline it measures in the same run. The summary holds one row per benchmark (its exact
# command, exit status and wall time) and then each benchmark's closing figures (the tail of its output); the
# whole output of each is kept beside it. The full runs and their recorded results are in docs/benchmarks.md.
# Knobs: QUICK_TAIL=18 (lines of each output in the summary), VENV=.venv.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
TAIL=${QUICK_TAIL:-18}
out="benchmarks/results/quick-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
export PYTHONPATH=.

names=()
commands=()
add() { names+=("$1"); commands+=("$2"); }
add runtime-get "DB=both CONCURRENCY='16 64' DURATION=5 WARMUP=2 QUIET_WAIT=0 VENV=$VENV bash benchmarks/runtime_get.sh"
add events-bulk "$PY benchmarks/events_bulk.py --events 2000"
add fire-to-resume "$PY benchmarks/triggerer_latency.py --tasks 1000 --db postgres --delay 15"
add watch-feed "$PY benchmarks/watch_latency.py --tasks 1000 --db postgres --idle-watchers 100 --idle-seconds 10"
add density "$PY benchmarks/triggerer_density.py 10000 --settle 2 --idle 5"
add density-e2e "$PY benchmarks/triggerer_density.py 10000 --end-to-end --settle 2 --idle 5"
add loop-stalls "$PY -m benchmarks.loop_stalls --db postgres && $PY -m benchmarks.loop_stalls --db sqlite"
add retention "$PY benchmarks/retention.py --rows 100000 --seconds 5"

{
  echo "# Quick benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB RAM; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "tree: $(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty)"
  echo
  echo "| benchmark | exit | seconds | command |"
  echo "|---|---:|---:|---|"
} > "$out/summary.md"

failed=0
for i in "${!names[@]}"; do
  name=${names[$i]} command=${commands[$i]}
  echo "== $name: $command"
  started=$(date +%s)
  bash -c "$command" > "$out/$name.log" 2>&1
  status=$?
  took=$(( $(date +%s) - started ))
  [ "$status" -eq 0 ] || failed=1
  echo "   exit $status after ${took} s; output: $out/$name.log"
  echo "| $name | $status | $took | \`$command\` |" >> "$out/summary.md"
done

for name in "${names[@]}"; do
  {
    echo
    echo "## $name"
    echo
    echo '```'
    tail -n "$TAIL" "$out/$name.log"
    echo '```'
  } >> "$out/summary.md"
done
echo "summary: $out/summary.md"
exit "$failed"
