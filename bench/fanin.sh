#!/usr/bin/env bash
# QoS 0/1 fan-in: 8 publishers -> 1 wildcard subscriber, 64-byte payloads,
# against Ferry and Mosquitto 2 (apt `mosquitto`) started here on loopback
# ports, alternately, with one load generator (`ferry bench fanin`).
# Prints every run and the median per broker. A figure counts only with 0% loss.
#
#   bench/fanin.sh [qos] [runs] [messages-per-publisher]
set -euo pipefail
cd "$(dirname "$0")/.."
QOS=${1:-0}
RUNS=${2:-5}
MSGS=${3:-50000}
PUBS=8
FERRY_PORT=${FERRY_PORT:-21883}
MOSQ_PORT=${MOSQ_PORT:-21884}

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/ferry" ./cmd/ferry
command -v mosquitto >/dev/null || { echo "mosquitto is not installed (apt-get install mosquitto)"; exit 1; }

# Queues raised so neither broker drops under the burst: the comparison is
# of throughput at 0% loss.
cat >"$work/ferry.yaml" <<YAML
mqtt:
  max_queued: 1000000
  max_inflight: 1000
YAML
"$work/ferry" serve --config "$work/ferry.yaml" --mqtt-addr "127.0.0.1:$FERRY_PORT" --data-dir "$work/data" --log-level warn &
pids+=($!)
cat >"$work/mosquitto.conf" <<CONF
listener $MOSQ_PORT 127.0.0.1
allow_anonymous true
max_queued_messages 1000000
max_inflight_messages 1000
persistence false
CONF
/usr/sbin/mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)

wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "port $1 did not open"; exit 1
}
wait_port "$FERRY_PORT"
wait_port "$MOSQ_PORT"

declare -A rates
for i in $(seq "$RUNS"); do
	for target in ferry:$FERRY_PORT mosquitto:$MOSQ_PORT; do
		name=${target%%:*}
		port=${target##*:}
		line=$("$work/ferry" bench fanin --addr "127.0.0.1:$port" --publishers $PUBS --messages "$MSGS" --payload 64 --qos "$QOS")
		echo "$name $line"
		loss=$(sed -E 's/.*loss ([0-9.]+)%.*/\1/' <<<"$line")
		rate=$(sed -E 's/.*: ([0-9]+) msgs\/s.*/\1/' <<<"$line")
		if [ "$loss" != "0.00" ]; then rate="0(loss)"; fi
		rates[$name]="${rates[$name]:-} $rate"
	done
done

median() { tr ' ' '\n' | grep -E '^[0-9]+$' | sort -n | awk '{a[NR]=$1} END {if (NR==0) print "none"; else print a[int((NR+1)/2)]}'; }
f=$(median <<<"${rates[ferry]}")
m=$(median <<<"${rates[mosquitto]}")
echo "QoS $QOS fan-in, $PUBS publishers x $MSGS msgs, 64 B, $RUNS runs each (lossless runs only)"
echo "median ferry:     $f msgs/s"
echo "median mosquitto: $m msgs/s"
if [[ $f =~ ^[0-9]+$ && $m =~ ^[0-9]+$ && $m -gt 0 ]]; then
	awk -v f="$f" -v m="$m" 'BEGIN { printf "ratio ferry/mosquitto: %.2f\n", f/m }'
fi
