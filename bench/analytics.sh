#!/usr/bin/env bash
# Streaming analytics (docs/analytics.md, "Benchmarks").
#
# 1. The operator fed in process, one core: 10,000 devices, ~45-byte JSON
#    payloads, 10 s tumbling windows, avg/min/max/count with field
#    extraction, then the same with p95; events/s and the heap per
#    (device, window).
# 2. End to end: MQTT QoS 0 telemetry into a fresh `ferry serve`, without
#    and then with a query attached: first ingest alone (--no-consumer:
#    without the query Ferry drops the telemetry), then with a northbound
#    AMQP consumer (ferry bench hono; its payloads carry the send time, not
#    JSON, so the query counts rows by device without reading them). The
#    query's 1 s windows close under load; explain's "emit delay" is the
#    wall time from window end (+ lateness, 0 here) to the final row.
#
#   bench/analytics.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
echo "== operator, GOMAXPROCS=1"
go test -run '^$' -bench 'Operator' -cpu 1 -benchtime 2s -count "$RUNS" ./internal/analytics/engine/ | grep -E '^Benchmark'

dir=$(mktemp -d)
go build -o "$dir/ferry" ./cmd/ferry
mqtt=127.0.0.1:${MQTT_PORT:-18993}
app=127.0.0.1:${APP_PORT:-15782}
web=127.0.0.1:${HTTP_PORT:-18187}
cat >"$dir/with-query.yaml" <<'YAML'
analytics:
  queries:
    - name: bench
      sql: SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(1s)
YAML
echo "" >"$dir/without.yaml"
serve() {
	rm -rf "$dir/data"
	"$dir/ferry" serve --config "$1" --data-dir "$dir/data" --mqtt-addr "$mqtt" --amqp-app-addr "$app" --amqp-addr "" \
		--http-addr "$web" --log-level warn &
	pid=$!
	for _ in $(seq 100); do (exec 3<>/dev/tcp/${app%:*}/${app#*:}) 2>/dev/null && break; sleep 0.1; done
}
trap '[ -n "${pid:-}" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
for consumer in --no-consumer ""; do
for cfg in without with-query; do
	echo "== telemetry QoS 0, ${consumer:-to an AMQP application}, $cfg"
	serve "$dir/$cfg.yaml"
	"$dir/ferry" bench hono --addr "$mqtt" --amqp-addr "$app" --mode telemetry --devices 8 --messages 200000 --runs "$RUNS" $consumer
	if [ "$cfg" = with-query ]; then
		"$dir/ferry" query explain bench --api-url "http://$web" --data-dir "$dir/data" | sed -n '/^state/,$p'
	fi
	kill $pid; wait $pid 2>/dev/null || true; pid=
done
done
