#!/usr/bin/env bash
# Hono scenarios against a fresh `ferry serve` on loopback: telemetry
# (MQTT QoS 0 -> northbound AMQP receiver), events (MQTT QoS 1 -> durable
# log -> AMQP receiver settling each) and command round trips. First the
# devices alone (--no-consumer: Ferry drops the telemetry), so that the
# generator is known not to be the bottleneck.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/ferry
go build -o "$bin" ./cmd/ferry
data=$(mktemp -d)
mqtt=127.0.0.1:${MQTT_PORT:-18883}
app=127.0.0.1:${APP_PORT:-15682}
web=127.0.0.1:${HTTP_PORT:-18087}
dev=127.0.0.1:${DEVICE_AMQP_PORT:-15686}
coap=127.0.0.1:${COAP_PORT:-15688}
"$bin" serve --data-dir "$data" --mqtt-addr "$mqtt" --amqp-app-addr "$app" --amqp-addr "$dev" --http-addr "$web" --coap-addr "$coap" --log-level warn &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/${app%:*}/${app#*:}) 2>/dev/null && break; sleep 0.1; done

b() { "$bin" bench hono --addr "$mqtt" --amqp-addr "$app" --http-addr "$web" --device-amqp-addr "$dev" --coap-addr "$coap" --runs "${RUNS:-3}" "$@"; }
echo "== devices alone (telemetry QoS 0, no consumer)"; b --mode telemetry --no-consumer --devices 8 --messages 50000
echo "== telemetry QoS 0, as fast as possible"; b --mode telemetry --devices 8 --messages 50000
echo "== telemetry QoS 0 at 50k msgs/s (latency)"; b --mode telemetry --devices 8 --messages 25000 --rate 50000
echo "== events QoS 1, durable, settled one by one"; b --mode event --devices 8 --messages 20000
echo "== command round trips"; b --mode command --devices 8 --messages 50000
echo "== HTTP telemetry, 8 keep-alive clients (Hono's HTTP adapter)"; b --mode http --devices 8 --messages 10000
echo "== AMQP device telemetry, unsettled, 64 outstanding per device (Hono's AMQP adapter)"; b --mode amqp --devices 8 --messages 50000
echo "== CoAP telemetry, CON, 64 outstanding per device (Hono's CoAP adapter)"; b --mode coap --devices 8 --messages 5000
echo "== CoAP telemetry, NON, unpaced (UDP: what is lost counts)"; b --mode coap-non --devices 8 --messages 5000
