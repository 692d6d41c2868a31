#!/usr/bin/env bash
# Load benchmark of tocsin's hot runtime read, GET /execution/variables/{key}, side by side in one run
# with a bare Litestar hello-world (the "physical limit" of a Litestar route on this machine) and,
# when one is reachable, Airflow's Execution API (the anchor of DESIGN.md section 7).
#
#   bash benchmarks/runtime_get.sh
#   DURATION=10 WARMUP=3 DB=both ROUNDS=3 bash benchmarks/runtime_get.sh
#   AIRFLOW_URL=http://127.0.0.1:8080 AIRFLOW_TOKEN=... bash benchmarks/runtime_get.sh
#
# Method (the same as the shared baselines, shared/bench/README.md): every server runs 1 worker pinned to
# CPU 0 (taskset), wrk runs 1 thread pinned to CPU 1, HTTP/1.1 keep-alive, loopback only; for each
# (target, concurrency) an unmeasured warm-up, then the measured run. PostgreSQL is not pinned.
#
# Knobs (env):
#   DB=postgres|sqlite|both        database(s) behind tocsin (default postgres)
#   CONCURRENCY="16 64"            wrk connections, one measured run each
#   DURATION=15 WARMUP=5           measured / warm-up seconds per run
#   ROUNDS=1                       repeat the whole set; the table shows medians and req/s ranges
#   QUIET_WAIT=30                  before each (target, conc), wait up to this many seconds for an idle
#                                  machine (0: do not wait); CPU used by others during each run is reported
#   WRK_THREADS=1 WRK_TIMEOUT=10s
#   PIN=1 SERVER_CPU=0 WRK_CPU=1   PIN=0 disables taskset
#   TOCSIN_PORT=18080 HELLO_PORT=18081 SQLITE_PORT=18082
#   VENV=<repo>/.venv              where tocsin, uvicorn and litestar are installed
#   PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres BENCH_DB=tocsin_bench
#   AIRFLOW_URL, AIRFLOW_TOKEN     load Airflow's GET /execution/variables/$AIRFLOW_VAR in the same run
#   AIRFLOW_VAR=bench_var AIRFLOW_API_VERSION=2026-06-30
#   AIRFLOW_PID                    optional: the Airflow server's PID, for its CPU and RSS columns
#   AIRFLOW_START=1                start Airflow's api-server here (1 worker, pinned like the others, stopped at
#                                  exit) from the shared baseline's venv and seed (SHARED_BENCH, default
#                                  <repo>/../shared/bench; prepare it once with its airflow/setup.sh)
#   AIRFLOW_PORT=18083             its port
#   PROFILE=1                      afterwards, py-spy each tocsin server under c=16 load (needs py-spy)
#   PROFILE_DURATION=$DURATION PROFILE_RATE=200
#   OUT_DIR                        results folder (default: a new temporary folder)
#
# It creates (and drops at exit) the database BENCH_DB, or a temporary SQLite file; every server it starts
# is stopped by its PID on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

DB=${DB:-postgres}
CONCURRENCY=${CONCURRENCY:-"16 64"}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-1}
WRK_THREADS=${WRK_THREADS:-1}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
PIN=${PIN:-1}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
TOCSIN_PORT=${TOCSIN_PORT:-18080}
HELLO_PORT=${HELLO_PORT:-18081}
SQLITE_PORT=${SQLITE_PORT:-18082}
VENV=${VENV:-$REPO/.venv}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
BENCH_DB=${BENCH_DB:-tocsin_bench}
AIRFLOW_VAR=${AIRFLOW_VAR:-bench_var}
AIRFLOW_API_VERSION=${AIRFLOW_API_VERSION:-2026-06-30}
PROFILE=${PROFILE:-0}
QUIET_WAIT=${QUIET_WAIT:-30}
PROFILE_DURATION=${PROFILE_DURATION:-$DURATION}
PROFILE_RATE=${PROFILE_RATE:-200}
AIRFLOW_START=${AIRFLOW_START:-0}
AIRFLOW_PORT=${AIRFLOW_PORT:-18083}
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
VAR_KEY=bench_var
VAR_VALUE="hello from the bench variable"

case "$DB" in postgres|sqlite|both) ;; *) echo "DB=$DB: use postgres, sqlite or both" >&2; exit 2 ;; esac

log() { printf '%s\n' "$*" >&2; }
die() { log "runtime_get.sh: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  log "wrk (the load generator) is not installed: installing it with 'apt-get install -y wrk'"
  command -v apt-get >/dev/null 2>&1 || die "no apt-get here: install wrk 4.x yourself and re-run"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } \
    || die "'apt-get install -y wrk' failed (needs root and a reachable Debian mirror)"
  command -v wrk >/dev/null 2>&1 || die "wrk is still missing after apt-get"
fi
for tool in curl python3; do command -v "$tool" >/dev/null 2>&1 || die "$tool is required"; done
if [ "$PIN" = 1 ]; then command -v taskset >/dev/null 2>&1 || die "taskset (util-linux) is required, or PIN=0"; fi
PY="$VENV/bin/python"
TOCSIN="$VENV/bin/tocsin"
[ -x "$PY" ] || die "no Python at $PY: set VENV to the virtualenv where tocsin is installed"
[ -x "$TOCSIN" ] || die "no tocsin CLI at $TOCSIN: pip install -e '.[postgres]' in $VENV"
"$PY" -c 'import litestar, uvicorn, uvloop, httptools, msgspec' 2>/dev/null \
  || die "$VENV lacks litestar/uvicorn/uvloop/httptools/msgspec"
if [ "$DB" != sqlite ]; then
  command -v psql >/dev/null 2>&1 || die "psql is required for DB=$DB"
  "$PY" -c 'import asyncpg' 2>/dev/null || die "asyncpg is missing in $VENV (the postgres extra)"
fi

pin_server=(); pin_wrk=()
if [ "$PIN" = 1 ]; then pin_server=(taskset -c "$SERVER_CPU"); pin_wrk=(taskset -c "$WRK_CPU"); fi

OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tocsin-bench.XXXXXX")}
mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/results.tsv"
printf 'round\ttarget\tconc\trps\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tnon2xx\tsock_err\trss_mib\tserver_cpu\tpg_cpu\tother_cpu\n' > "$RESULTS"

# --- cleanup: every server by its PID, the bench database, the SQLite folder -------------------------
PIDS=()
PG_CREATED=0
SQLITE_DIR=""

stop_pid() {  # TERM, wait up to 15 s, then KILL
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
}

psql_admin() { psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [ "$PG_CREATED" = 1 ]; then
    psql_admin -c "DROP DATABASE IF EXISTS \"$BENCH_DB\" WITH (FORCE)" >/dev/null 2>&1 \
      && log "dropped database $BENCH_DB" || log "!! could not drop database $BENCH_DB"
  fi
  [ -n "$SQLITE_DIR" ] && rm -rf "$SQLITE_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -----------------------------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() {  # URL TIMEOUT_S: until it answers 200
  local url="$1" t="$2" i
  for i in $(seq 1 "$((t * 4))"); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ] && return 0
    sleep 0.25
  done
  return 1
}

rss_mib() {  # VmRSS of one process (the servers run 1 worker in-process), MiB
  awk '$1=="VmRSS:" {printf "%d", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "-"
}

# start_server NAME PORT LOGFILE CMD...: pinned, in the background; sets SPID and records it
start_server() {
  local name="$1" port="$2" logfile="$3"; shift 3
  port_busy "$port" && die "port $port is already in use (set ${name^^}_PORT)"
  "${pin_server[@]}" "$@" > "$logfile" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
}

# load ROUND TARGET URL PID [wrk -H args...]: warm-up then measured run per concurrency, one TSV row each
load() {
  local round="$1" target="$2" url="$3" pid="$4"; shift 4
  local c out line cpu rss quiet spid_arg=()
  [ "$pid" != "-" ] && spid_arg=(--server-pid "$pid")
  for c in $CONCURRENCY; do
    if [ "$QUIET_WAIT" != 0 ]; then
      quiet=$(python3 "$HERE/wrk_cpu.py" --wait-quiet "$QUIET_WAIT")
      [[ "$quiet" == BUSY* ]] && log "!! machine busy before $target c=$c: $quiet"
    fi
    "${pin_wrk[@]}" wrk -t"$WRK_THREADS" -c"$c" -d"${WARMUP}s" --timeout "$WRK_TIMEOUT" \
      -s "$HERE/report.lua" "$@" "$url" >/dev/null 2>&1 || true
    out=$("${pin_wrk[@]}" python3 "$HERE/wrk_cpu.py" "${spid_arg[@]}" -- wrk -t"$WRK_THREADS" -c"$c" \
      -d"${DURATION}s" --timeout "$WRK_TIMEOUT" -s "$HERE/report.lua" "$@" "$url" 2>&1) || true
    line=$(printf '%s\n' "$out" | grep '^RESULT' | tail -n1 || true)
    cpu=$(printf '%s\n' "$out" | grep '^CPU' | tail -n1 || true)
    if [ -z "$line" ]; then
      log "!! wrk gave no result for $target c=$c:"; printf '%s\n' "$out" | tail -n5 >&2; continue
    fi
    rss="-"; [ "$pid" != "-" ] && rss=$(rss_mib "$pid")
    printf '%s %s\n' "$line" "$cpu" | tr ' ' '\n' | awk -F= -v r="$round" -v t="$target" -v c="$c" -v m="$rss" '
      { v[$1] = $2 }
      END { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r, t, c, v["rps"], v["p50_ms"],
            v["p90_ms"], v["p99_ms"], v["max_ms"], v["non2xx"], v["sock_errors"], m, v["server_pct"],
            v["postgres_pct"], v["other_pct"] }' | tee -a "$RESULTS" >&2
  done
}

# --- machine and versions ----------------------------------------------------------------------------
{
  echo "date:     $(date)"
  echo "machine:  $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
  echo "python:   $("$PY" -c 'import platform; print(platform.python_implementation(), platform.python_version())')"
  echo "packages: $("$PY" - <<'PYEOF'
from importlib.metadata import PackageNotFoundError, version
out = []
for name in ("litestar", "msgspec", "uvicorn", "uvloop", "httptools", "asyncpg", "sqlalchemy", "aiosqlite", "pyjwt"):
    try:
        out.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        pass
print(", ".join(out))
PYEOF
)"
  echo "wrk:      $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
  echo "tree:     $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo 'not a git checkout') (tocsin under test: the working tree, as installed in $(basename "$VENV"))"
  echo "load:     $CONCURRENCY connections, ${WARMUP}s warm-up + ${DURATION}s measured, $WRK_THREADS wrk thread(s), $ROUNDS round(s), PIN=$PIN (server CPU $SERVER_CPU, wrk CPU $WRK_CPU)"
} | tee "$OUT_DIR/machine.txt" >&2

# --- servers -----------------------------------------------------------------------------------------
TARGETS=()     # name|url|pid|extra wrk args (one string, split on the first three bars)
SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
export TOCSIN_JWT_SECRET="$SECRET"
TOKEN=""

# start_tocsin KIND PORT DATABASE_URL
start_tocsin() {
  local kind="$1" port="$2" url="$3" base body code
  log "[$kind] tocsin db upgrade"
  TOCSIN_DATABASE_URL="$url" "$TOCSIN" db upgrade > "$OUT_DIR/tocsin-$kind.migrate.log" 2>&1 \
    || { tail -n20 "$OUT_DIR/tocsin-$kind.migrate.log" >&2; die "tocsin db upgrade failed for $kind"; }
  if [ -z "$TOKEN" ]; then
    TOKEN=$(TOCSIN_DATABASE_URL="$url" "$TOCSIN" token create --scope worker --ttl 6h --subject bench | tail -n1)
  fi
  start_server tocsin "$port" "$OUT_DIR/tocsin-$kind.server.log" \
    env TOCSIN_DATABASE_URL="$url" "$TOCSIN" api-server --host 127.0.0.1 --port "$port" --workers 1
  local pid=$SPID
  log "[$kind] server: ${pin_server[*]} tocsin api-server --host 127.0.0.1 --port $port --workers 1  (pid $pid)"
  base="http://127.0.0.1:$port"
  wait_http "$base/health" 60 || { tail -n30 "$OUT_DIR/tocsin-$kind.server.log" >&2; die "tocsin ($kind) did not come up"; }
  code=$(curl -s -o "$OUT_DIR/seed.out" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d "{\"value\": \"$VAR_VALUE\"}" "$base/execution/variables/$VAR_KEY")
  [ "$code" = 200 ] || die "seeding $VAR_KEY on $kind answered HTTP $code: $(head -c 300 "$OUT_DIR/seed.out")"
  code=$(curl -s -D "$OUT_DIR/probe.headers" -o "$OUT_DIR/probe.out" -w '%{http_code}' \
    -H "Authorization: Bearer $TOKEN" "$base/execution/variables/$VAR_KEY")
  body=$(cat "$OUT_DIR/probe.out")
  log "[$kind] probe GET /execution/variables/$VAR_KEY: HTTP $code, $(wc -c < "$OUT_DIR/probe.out") bytes: $body"
  [ "$code" = 200 ] && [[ "$body" == *"$VAR_VALUE"* ]] || die "probe of tocsin ($kind) failed"
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base/execution/variables/$VAR_KEY")
  [ "$code" = 401 ] || log "!! [$kind] the variable answers HTTP $code without a token (expected 401)"
  log "[$kind] idle RSS $(rss_mib "$pid") MiB"
  TARGETS+=("tocsin-$kind|$base/execution/variables/$VAR_KEY|$pid|-H|Authorization: Bearer $TOKEN")
}

if [ "$DB" != sqlite ]; then
  if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; then
    command -v pg_ctlcluster >/dev/null 2>&1 || die "PostgreSQL is not answering at $PG_HOST:$PG_PORT"
    PGVER=$(ls /etc/postgresql | sort -n | tail -n1)
    log "PostgreSQL is down: pg_ctlcluster $PGVER main start"
    pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start
    for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 1; done
  fi
  log "postgres: $(psql_admin -c 'SHOW server_version')"
  echo "postgres: $(psql_admin -c 'SELECT version()')" >> "$OUT_DIR/machine.txt"
  psql_admin -c "DROP DATABASE IF EXISTS \"$BENCH_DB\" WITH (FORCE)" >/dev/null 2>&1
  psql_admin -c "CREATE DATABASE \"$BENCH_DB\"" >/dev/null
  PG_CREATED=1
  start_tocsin postgres "$TOCSIN_PORT" "postgresql+asyncpg://$PG_USER@$PG_HOST:$PG_PORT/$BENCH_DB"
fi
if [ "$DB" != postgres ]; then
  SQLITE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tocsin-bench-sqlite.XXXXXX")
  start_tocsin sqlite "$SQLITE_PORT" "sqlite+aiosqlite:///$SQLITE_DIR/tocsin_bench.db"
fi

start_server hello "$HELLO_PORT" "$OUT_DIR/hello-litestar.server.log" \
  env PYTHONDONTWRITEBYTECODE=1 "$PY" -m uvicorn hello_litestar:app --app-dir "$HERE" --host 127.0.0.1 \
  --port "$HELLO_PORT" --workers 1 --loop uvloop --http httptools --no-access-log --log-level warning
HELLO_PID=$SPID
log "[hello] server: ${pin_server[*]} uvicorn hello_litestar:app --port $HELLO_PORT --workers 1 --loop uvloop --http httptools --no-access-log  (pid $HELLO_PID)"
wait_http "http://127.0.0.1:$HELLO_PORT/hello" 60 || { tail -n30 "$OUT_DIR/hello-litestar.server.log" >&2; die "hello-world did not come up"; }
log "[hello] probe: $(curl -s "http://127.0.0.1:$HELLO_PORT/hello"), idle RSS $(rss_mib "$HELLO_PID") MiB"
TARGETS=("hello-litestar|http://127.0.0.1:$HELLO_PORT/hello|$HELLO_PID|" "${TARGETS[@]}")

if [ "$AIRFLOW_START" = 1 ] && [ -z "${AIRFLOW_URL:-}" ]; then
  AF_ENV="$SHARED_BENCH/airflow/env.sh"
  [ -f "$AF_ENV" ] || die "AIRFLOW_START=1: no $AF_ENV (set SHARED_BENCH to the shared bench folder)"
  # The shared scripts keep Airflow's venv, home and seed ids under their BENCH_ROOT; read them in a subshell so
  # that none of Airflow's settings leak into this script's environment.
  af() { bash -c 'af_env=$1; shift; source "$af_env"; source "$BENCH_ROOT/db_kind.env" 2>/dev/null || true
    [ "${DB_KIND:-postgres}" = sqlite ] && export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$BENCH_ROOT/airflow.db"
    [ -f "$BENCH_ROOT/seed.env" ] && source "$BENCH_ROOT/seed.env"; eval "$1"' _ "$AF_ENV" "$1"; }
  af '[ -x "$VENV/bin/airflow" ] && [ -f "$BENCH_ROOT/seed.env" ]' \
    || die "AIRFLOW_START=1: Airflow is not set up: bash $SHARED_BENCH/airflow/setup.sh"
  start_server airflow "$AIRFLOW_PORT" "$OUT_DIR/airflow.server.log" \
    bash -c 'source "$1"; source "$BENCH_ROOT/db_kind.env" 2>/dev/null || true
      [ "${DB_KIND:-postgres}" = sqlite ] && export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$BENCH_ROOT/airflow.db"
      exec "$VENV/bin/airflow" api-server --host 127.0.0.1 --port "$2" --workers 1 --apps all' _ "$AF_ENV" "$AIRFLOW_PORT"
  AIRFLOW_PID=$SPID
  log "[airflow] server: ${pin_server[*]} airflow api-server --host 127.0.0.1 --port $AIRFLOW_PORT --workers 1 --apps all  (pid $AIRFLOW_PID)"
  wait_http "http://127.0.0.1:$AIRFLOW_PORT/execution/health" 180 \
    || { tail -n30 "$OUT_DIR/airflow.server.log" >&2; die "Airflow's api-server did not come up"; }
  AIRFLOW_TOKEN=$(af '"$VENV/bin/python" "$(dirname "$af_env")/mint_token.py" "$TI_ID" 21600 2>/dev/null | tail -n1')
  AIRFLOW_API_VERSION=$(af '"$VENV/bin/python" -c "from airflow.sdk.api.datamodels._generated import API_VERSION; print(API_VERSION)" 2>/dev/null | tail -n1')
  AIRFLOW_URL="http://127.0.0.1:$AIRFLOW_PORT"
  log "[airflow] $(af '"$VENV/bin/airflow" version 2>/dev/null | tail -n1'), API version $AIRFLOW_API_VERSION, idle RSS $(rss_mib "$AIRFLOW_PID") MiB"
fi
if [ -n "${AIRFLOW_URL:-}" ] && [ -n "${AIRFLOW_TOKEN:-}" ]; then
  host=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).hostname or "")' "$AIRFLOW_URL")
  case "$host" in
    127.0.0.1|localhost|::1)
      base=${AIRFLOW_URL%/}; base=${base%/execution}
      url="$base/execution/variables/$AIRFLOW_VAR"
      code=$(curl -s -o "$OUT_DIR/airflow.probe" -w '%{http_code}' -H "Authorization: Bearer $AIRFLOW_TOKEN" \
        -H "Airflow-API-Version: $AIRFLOW_API_VERSION" "$url" || true)
      log "[airflow] probe $url: HTTP $code: $(head -c 200 "$OUT_DIR/airflow.probe" 2>/dev/null)"
      if [ "$code" = 200 ]; then
        apid=${AIRFLOW_PID:--}
        [ "$apid" != "-" ] && ! kill -0 "$apid" 2>/dev/null && { log "!! AIRFLOW_PID=$apid is not running: ignored"; apid=-; }
        TARGETS+=("airflow|$url|$apid|-H|Authorization: Bearer $AIRFLOW_TOKEN|-H|Airflow-API-Version: $AIRFLOW_API_VERSION")
      else
        log "!! Airflow did not answer 200: the table uses the recorded anchor instead"
      fi ;;
    *) log "!! AIRFLOW_URL must point at loopback (127.0.0.1/localhost): not loading $AIRFLOW_URL" ;;
  esac
else
  log "no AIRFLOW_URL/AIRFLOW_TOKEN: tocsin/Airflow ratios use the recorded anchor (232 req/s at c=16, 170 at c=64)"
fi

# --- load --------------------------------------------------------------------------------------------
log ""
log "round	target	conc	req/s	p50_ms	p90_ms	p99_ms	max_ms	non2xx	sock_err	rss_mib	srv%	pg%	other%"
for round in $(seq 1 "$ROUNDS"); do
  for spec in "${TARGETS[@]}"; do
    IFS='|' read -r -a parts <<< "$spec"
    load "$round" "${parts[0]}" "${parts[1]}" "${parts[2]}" "${parts[@]:3}"
  done
done

# --- optional profile --------------------------------------------------------------------------------
if [ "$PROFILE" = 1 ]; then
  PYSPY=$(command -v py-spy || echo "$VENV/bin/py-spy")
  if [ ! -x "$PYSPY" ]; then
    log "!! PROFILE=1 but py-spy is missing: $VENV/bin/pip install py-spy"
  else
    for spec in "${TARGETS[@]}"; do
      IFS='|' read -r -a parts <<< "$spec"
      case "${parts[0]}" in tocsin-*) ;; *) continue ;; esac
      raw="$OUT_DIR/profile-${parts[0]}.txt"
      log "[profile] ${parts[0]}: py-spy record ${PROFILE_DURATION}s at ${PROFILE_RATE} Hz under c=16"
      "${pin_wrk[@]}" wrk -t1 -c16 -d"$((PROFILE_DURATION + 4))s" --timeout "$WRK_TIMEOUT" \
        -s "$HERE/report.lua" "${parts[@]:3}" "${parts[1]}" > "$OUT_DIR/profile-${parts[0]}.wrk" 2>&1 &
      wpid=$!
      sleep 2
      # --gil: only the thread holding the GIL is sampled (idle executor threads would otherwise count as busy)
      "${pin_wrk[@]}" "$PYSPY" record --gil -r "$PROFILE_RATE" -d "$PROFILE_DURATION" -p "${parts[2]}" -f raw -o "$raw" \
        > "$OUT_DIR/profile-${parts[0]}.pyspy.log" 2>&1 || log "!! py-spy failed: $(tail -n2 "$OUT_DIR/profile-${parts[0]}.pyspy.log")"
      wait "$wpid" || true
      # server CPU µs per request from the last measured c=16 row of this target (sampling itself slows the server)
      us=$(awk -F'\t' -v t="${parts[0]}" '$2==t && $3==16 && $4>0 {u=$12*1e4/$4} END {if (u) printf "%.0f", u}' "$RESULTS")
      [ -s "$raw" ] && "$PY" "$HERE/profile_summary.py" "$raw" ${us:+--us-per-request "$us"} \
        | tee "$OUT_DIR/profile-${parts[0]}.summary.txt" >&2
    done
  fi
fi

# --- table -------------------------------------------------------------------------------------------
python3 "$HERE/bench_table.py" "$RESULTS" > "$OUT_DIR/table.md"
echo
cat "$OUT_DIR/machine.txt"
echo
cat "$OUT_DIR/table.md"
echo
echo "results: $OUT_DIR (results.tsv, table.md, server logs)"
