#!/usr/bin/env bash
# The whole migration of docs/migrating-from-triggers.md on examples/legacy-db,
# command by command, against a PostgreSQL server: what that page shows is
# this script's output. It makes two scratch databases (the product's, and
# actline's audit trail) and a collector in a temporary directory, and
# removes them at the end.
#
#   bash examples/legacy-db/walkthrough.sh      # PG_URL, default postgres://postgres@127.0.0.1:5432/postgres; needs psql and curl
#
# About a minute: the app runs 5 s with every trigger, 10 s with the SDK
# beside them (the dual run), 5 s with the removable ones dropped.
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVER=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${SERVER%/*}
export DB="$base/legacy_walkthrough" ACTLINE_DB="$base/legacy_walkthrough_actline"
work=$(mktemp -d)
actline() { node bin/actline.js "$@"; }
psql_() { node -e "const pg=require('pg');const c=new pg.Client(process.argv[1]);c.connect().then(()=>c.query(process.argv[2])).then(r=>{for(const row of r.rows)console.log(Object.values(row).join(' | '))}).finally(()=>c.end())" "$@"; }
# A command and its output as the page shows them; a non-zero exit is shown, not fatal (compare exits 1 below parity).
show() {
  printf '\n$ %s\n' "$*" | sed "s|$work|/tmp/walkthrough|g"
  local code=0
  "$@" >"$work/out" 2>&1 || code=$?
  sed "s|$work|/tmp/walkthrough|g" "$work/out"
  [ "$code" -eq 0 ] || echo "(exit $code)"
}
step() { printf '\n## %s\n' "$*"; }

for d in legacy_walkthrough legacy_walkthrough_actline; do
  psql_ "$SERVER" "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null
  psql_ "$SERVER" "CREATE DATABASE $d" >/dev/null
done
collector_pid=
cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step "0. The product database: 18 tables, 64 triggers, and its app"
show node examples/legacy-db/workload.mjs --db "$DB" --setup
show node examples/legacy-db/workload.mjs --db "$DB" --seconds 5

step "1. Scan"
show actline triggers scan --db "$DB"

step "2. Back up"
show actline triggers backup --db "$DB" --out "$work/triggers-backup.json"

step "3. The dual run: the app with the SDK, the triggers still on"
cat >"$work/collector.yaml" <<EOF
data_dir: $work/data
server: { port: 4318, log_level: warn }
exporters:
  postgres: { url: $ACTLINE_DB }
EOF
node bin/actline.js start --config "$work/collector.yaml" >"$work/collector.log" 2>&1 &
collector_pid=$!
for _ in $(seq 1 60); do curl -sf http://127.0.0.1:4318/readyz >/dev/null && break; sleep 1; done
dual_start=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
show env ACTLINE_ENDPOINT=http://127.0.0.1:4318 OTEL_SERVICE_NAME=legacy-app \
  node --import @actline/instrumentation/register examples/legacy-db/workload.mjs --db "$DB" --seconds 10
# Acknowledged is durable; compare reads the stored rows: wait until the exporters have passed the log's end.
until curl -s http://127.0.0.1:4318/metrics | grep -E '^actline_exporter_queue_activities\{' | awk '{ s += $2 } END { exit s > 0 }'; do sleep 0.5; done
dual_end=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
show actline triggers compare --db "$DB" --actline-db "$ACTLINE_DB" --legacy-table audit_logs --since "$dual_start" --until "$dual_end"

step "4. Plan the phases"
parity=$(node bin/actline.js triggers compare --db "$DB" --actline-db "$ACTLINE_DB" --legacy-table audit_logs --since "$dual_start" --until "$dual_end" --json | node -e "process.stdout.write(JSON.parse(require('fs').readFileSync(0)).at_parity.join(','))") || true
show actline triggers plan --db "$DB" --parity "$parity" --out "$work/plan.json"

step "5. Drop them, a phase at a time"
show actline triggers drop --db "$DB" --plan "$work/plan.json" --phase 1
show actline triggers drop --db "$DB" --plan "$work/plan.json" --phase 1 --yes
show actline triggers drop --db "$DB" --plan "$work/plan.json" --phase 2 --yes
show actline triggers drop --db "$DB" --plan "$work/plan.json" --phase 3 --yes
show node examples/legacy-db/workload.mjs --db "$DB" --seconds 5

step "6. Roll back a phase"
# Phase 3 holds the audit triggers of invoices, organizations and products, whose updates the
# business triggers make inside the database, where the SDK cannot see them: back they come.
show actline triggers restore --db "$DB" --from "$work/triggers-backup.json" --plan "$work/plan.json" --phase 3 --yes

step "7. Backfill the history from before the dual run"
show actline triggers backfill --db "$DB" --legacy-table audit_logs --until "$dual_start" --checkpoint "$work/backfill.json"
show actline triggers backfill --db "$DB" --legacy-table audit_logs --until "$dual_start" --checkpoint "$work/backfill.json"
until curl -s http://127.0.0.1:4318/metrics | grep -E '^actline_exporter_queue_activities\{' | awk '{ s += $2 } END { exit s > 0 }'; do sleep 0.5; done
show psql "$ACTLINE_DB" -c "SELECT action, count(*) FROM audit_log WHERE attributes->>'legacy.table' = 'public.audit_logs' GROUP BY 1 ORDER BY 1"
