#!/usr/bin/env bash
# Hono's Kafka messaging against a fresh `ferry serve --kafka-brokers` on
# loopback, with franz-go's kfake as the Kafka cluster (in memory, one
# broker): MQTT devices publish telemetry (QoS 0, QoS 1) and events, and a
# Kafka consumer of hono.telemetry|event.<tenant> counts them. What kfake
# takes alone is measured by
#   go test -run x -bench . ./internal/northbound/kafkaapi/
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
go build -o "$dir/ferry" ./cmd/ferry
go build -o "$dir/kfake" ./bench/kfake
kafka=127.0.0.1:${KAFKA_PORT:-19092}
mqtt=127.0.0.1:${MQTT_PORT:-18893}
"$dir/kfake" -port "${kafka#*:}" -partitions 8 >/dev/null &
kpid=$!
trap '[ -n "${pid:-}" ] && kill $pid && wait $pid; kill $kpid; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/${kafka%:*}/${kafka#*:}) 2>/dev/null && break; sleep 0.1; done
"$dir/ferry" kafka topics create --tenant DEFAULT_TENANT --kafka-brokers "$kafka" --partitions 8 >/dev/null
"$dir/ferry" serve --data-dir "$dir/data" --mqtt-addr "$mqtt" --amqp-app-addr "" --amqp-addr "" --http-addr "" \
	--kafka-brokers "$kafka" --log-level warn &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/${mqtt%:*}/${mqtt#*:}) 2>/dev/null && break; sleep 0.1; done

b() { "$dir/ferry" bench hono --addr "$mqtt" --kafka-brokers "$kafka" --runs "${RUNS:-3}" "$@"; }
echo "== telemetry QoS 0 -> Kafka"; b --mode telemetry --devices 8 --messages 50000
echo "== telemetry QoS 1 -> Kafka (PUBACK after Kafka's ack), 64 in flight per device"; b --mode telemetry --qos 1 --devices 8 --messages 25000
echo "== events -> Kafka (PUBACK after Kafka's ack), 64 in flight per device"; b --mode event --devices 8 --messages 25000
