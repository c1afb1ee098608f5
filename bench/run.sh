#!/usr/bin/env bash
# Ferry vs Mosquitto 2 vs mochi-mqtt, every scenario of `ferry bench`, on
# loopback ports only. Builds ferry and the bench-only mochi program into a
# temporary folder, starts the three brokers with their queue limits raised
# (a figure counts only with 0% loss), runs each scenario RUNS times against
# each broker in rotating order and prints a Markdown table of medians and
# ratios. See bench/README.md.
#
#   bench/run.sh                      # everything, default counts (~5 min on 2 cores)
#   RUNS=1 SCENARIOS="fanin-qos0 idle" IDLE_CONNS=2000 bench/run.sh
#
# Environment (defaults in brackets):
#   RUNS [5]            runs per scenario and broker (idle: IDLE_RUNS [1])
#   SCENARIOS           subset of: fanin-qos0 fanin-qos1 fanout latency idle
#                       (latency runs at each of LAT_RATES; latency-N: at N only)
#   BROKERS             subset of: ferry mosquitto mochi
#   FANIN_MSGS [50000]  QoS 0 messages per publisher (8 publishers)
#   FANIN1_MSGS [25000] QoS 1 messages per publisher (8 publishers)
#   FANOUT_MSGS [10000] messages of the 1 publisher (50 subscribers)
#   LAT_RATES ["16000 10000"] msgs/s of the latency runs, LAT_DURATION [4s]
#   IDLE_CONNS [100000] idle connections, capped by the fd limit (ulimit -n)
#   FERRY_REV           build ferry from this git revision (e.g. HEAD), not the working tree
#   MOSQ_NODELAY [false] Mosquitto's set_tcp_nodelay (false is its default)
#   FERRY_STORE [memory] Ferry's store.engine (pebble: its durable default)
#   RESULTS             file to keep the raw kv lines in
#   FERRY_PORT/MOSQ_PORT/MOCHI_PORT [21883/21884/21885]
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
IDLE_RUNS=${IDLE_RUNS:-1}
SCENARIOS=${SCENARIOS:-"fanin-qos0 fanin-qos1 fanout latency idle"}
BROKERS=${BROKERS:-"ferry mosquitto mochi"}
FANIN_MSGS=${FANIN_MSGS:-50000}
FANIN1_MSGS=${FANIN1_MSGS:-25000}
FANOUT_MSGS=${FANOUT_MSGS:-10000}
LAT_RATES=${LAT_RATES:-"16000 10000"}
LAT_DURATION=${LAT_DURATION:-4s}
IDLE_CONNS=${IDLE_CONNS:-100000}
declare -A port=(
	[ferry]=${FERRY_PORT:-21883}
	[mosquitto]=${MOSQ_PORT:-21884}
	[mochi]=${MOCHI_PORT:-21885}
)
declare -A pid=()

work=$(mktemp -d)
cleanup() {
	local b
	for b in "${!pid[@]}"; do stop "$b"; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "# $*" >&2; }

# --- build -----------------------------------------------------------------
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] ||
	{ echo "mosquitto is not installed (apt-get install mosquitto)" >&2; exit 1; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
log "building ferry and mochi into $work"
if [ -n "${FERRY_REV:-}" ]; then
	# A committed revision, not the working tree (which others may be editing).
	mkdir "$work/src"
	git archive "$FERRY_REV" | tar -x -C "$work/src"
	(cd "$work/src" && go build -o "$work/ferry" ./cmd/ferry)
	log "ferry built from $(git rev-parse --short "$FERRY_REV")"
else
	go build -o "$work/ferry" ./cmd/ferry
fi
(cd bench/mochi && GOWORK=off go build -o "$work/mochi" .)

# --- limits ----------------------------------------------------------------
# Both the generator and the broker hold one descriptor per idle connection.
# Raising the hard limit needs CAP_SYS_RESOURCE; without it, use the hard
# limit and cap the idle connections below it.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fds=$(ulimit -n)
if ((IDLE_CONNS > fds - 1000)); then
	log "file-descriptor limit is $fds (hard limit; raising it needs CAP_SYS_RESOURCE): idle connections capped from $IDLE_CONNS to $((fds - 1000))"
	IDLE_CONNS=$((fds - 1000))
fi
# Each loopback source address has its own ephemeral port range.
range=$(awk '{print $2 - $1}' /proc/sys/net/ipv4/ip_local_port_range)
sources=0
((IDLE_CONNS > range / 2)) && sources=$(((IDLE_CONNS + range / 2 - 1) / (range / 2)))

# --- brokers ---------------------------------------------------------------
http_off=()
"$work/ferry" serve --help | grep -q -- --http-addr && http_off=(--http-addr=)
# store.engine memory matches Mosquitto's "persistence false" and mochi
# (no persistence hook); FERRY_STORE=pebble measures Ferry's durable default.
cat >"$work/ferry.yaml" <<YAML
store:
  engine: ${FERRY_STORE:-memory}
mqtt:
  max_queued: 1000000
  max_inflight: 1000
YAML
cat >"$work/mosquitto.conf" <<CONF
listener ${port[mosquitto]} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000000
max_inflight_messages 1000
max_connections -1
set_tcp_nodelay ${MOSQ_NODELAY:-false}
log_dest stderr
log_type error
log_type warning
connection_messages false
CONF

# start BROKER [idle]
start() {
	local b=$1 mode=${2:-}
	case $b in
	ferry)
		rm -rf "$work/ferry-data"
		"$work/ferry" serve --config "$work/ferry.yaml" --mqtt-addr "127.0.0.1:${port[ferry]}" \
			--data-dir "$work/ferry-data" --log-level warn "${http_off[@]}" >>"$work/ferry.log" 2>&1 &
		;;
	mosquitto) "$MOSQUITTO" -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 & ;;
	mochi)
		# mochi allocates its outbound queue per client up front (a channel
		# of -pending slots, 8 bytes each): raised for message traffic, its
		# default (8192) for idle connections.
		local pending=1048576
		[ "$mode" != idle ] || pending=8192
		"$work/mochi" -addr "127.0.0.1:${port[mochi]}" -pending "$pending" >>"$work/mochi.log" 2>&1 &
		;;
	*) echo "unknown broker $b" >&2; exit 2 ;;
	esac
	pid[$b]=$!
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/${port[$b]}") 2>/dev/null && return 0
		kill -0 "${pid[$b]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "$b did not open port ${port[$b]}; its log:" >&2
	cat "$work/$b.log" >&2
	exit 1
}

stop() {
	local b=$1
	[ -n "${pid[$b]:-}" ] || return 0
	kill "${pid[$b]}" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "${pid[$b]}" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "${pid[$b]}" 2>/dev/null || true # mochi does not always end on SIGTERM
	wait "${pid[$b]}" 2>/dev/null || true
	unset "pid[$b]"
}

read -r -a brokers <<<"$BROKERS"
for b in "${brokers[@]}"; do start "$b"; done

# --- scenarios -------------------------------------------------------------
results=$work/results.txt
: >"$results"

# bench BROKER ARGS...: one `ferry bench` invocation, its kv lines tagged
# with the broker. A failed run is reported and left out.
bench() {
	local b=$1 out
	shift
	if out=$(timeout 300 "$work/ferry" bench "$@" --addr "127.0.0.1:${port[$b]}" --output kv 2>"$work/bench.err"); then
		sed "s/^/broker=$b /" <<<"$out" | tee -a "$results" >&2
	else
		log "$b: ferry bench $* failed: $(tail -n 3 "$work/bench.err")"
	fi
	[ ! -s "$work/bench.err" ] || sed "s/^/# $b: /" "$work/bench.err" >&2
}

# rotated N: the brokers in the order of run N, so that none always goes first.
rotated() {
	local n=$1 i k=${#brokers[@]}
	for ((i = 0; i < k; i++)); do echo "${brokers[$(((n + i) % k))]}"; done
}

started=$(date +%s)
scenarios=()
for s in $SCENARIOS; do
	if [ "$s" = latency ]; then
		for rate in $LAT_RATES; do scenarios+=("latency-$rate"); done
	else
		scenarios+=("$s")
	fi
done
for s in "${scenarios[@]}"; do
	case $s in
	fanin-qos0) args=(fanin --qos 0 --publishers 8 --messages "$FANIN_MSGS" --payload 64 --idle 2s) ;;
	fanin-qos1) args=(fanin --qos 1 --publishers 8 --messages "$FANIN1_MSGS" --payload 64 --idle 2s) ;;
	fanout) args=(fanout --qos 0 --subscribers 50 --messages "$FANOUT_MSGS" --payload 64 --idle 2s) ;;
	latency-*) args=(latency --qos 0 --rate "${s#latency-}" --duration "$LAT_DURATION" --warmup 1s --payload 64 --idle 2s) ;;
	idle)
		# A fresh broker for every run: memory held from earlier scenarios
		# would hide the connections' cost.
		for ((r = 0; r < IDLE_RUNS; r++)); do
			for b in $(rotated "$r"); do
				stop "$b"
				start "$b" idle
				log "idle run $((r + 1)): $b, $IDLE_CONNS connections"
				bench "$b" idle --conns "$IDLE_CONNS" --keepalive 60s --hold 5s --sources "$sources" --pid "${pid[$b]}" --label "idle-$IDLE_CONNS"
			done
		done
		for b in $(rotated 0); do
			stop "$b"
			start "$b"
		done
		continue
		;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
	for ((r = 0; r < RUNS; r++)); do
		for b in $(rotated "$r"); do
			log "$s run $((r + 1)): $b"
			bench "$b" "${args[@]}"
		done
	done
done
if [ -n "${RESULTS:-}" ]; then
	mkdir -p "$(dirname "$RESULTS")"
	cp "$results" "$RESULTS"
fi

# --- table -----------------------------------------------------------------
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)"
if [ -n "${FERRY_REV:-}" ]; then
	rev="ferry $(git rev-parse --short "$FERRY_REV")"
else
	rev="ferry $(git rev-parse --short HEAD) plus the working tree"
fi
echo "$rev, $("$MOSQUITTO" -h 2>/dev/null | head -n 1), mochi-mqtt $(sed -n 's/^require github.com\/mochi-mqtt\/server\/v2 //p' bench/mochi/go.mod)"
echo "runs per broker: $RUNS (idle: $IDLE_RUNS), $(($(date +%s) - started)) s; medians of lossless runs"
echo "fan-in: 8 publishers x $FANIN_MSGS (QoS 0) / $FANIN1_MSGS (QoS 1) msgs, 64 B -> 1 wildcard subscriber;" \
	"fan-out: 1 publisher x $FANOUT_MSGS msgs -> 50 subscribers; latency: QoS 0 at $LAT_RATES msgs/s for $LAT_DURATION each (first 1s left out);" \
	"idle: $IDLE_CONNS connections, keep alive 60s, held 5s, broker VmRSS growth per connection"
echo
"$work/ferry" bench report --base ferry "$results"
