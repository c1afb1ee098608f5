#!/usr/bin/env bash
# QoS 0/1 fan-in only (8 publishers -> 1 wildcard subscriber, 64 B), Ferry
# against Mosquitto: a thin wrapper around bench/run.sh, kept for its old
# command line.
#
#   bench/fanin.sh [qos] [runs] [messages-per-publisher]
set -euo pipefail
QOS=${1:-0}
case $QOS in
0) export FANIN_MSGS=${3:-50000} ;;
1) export FANIN1_MSGS=${3:-50000} ;;
*) echo "qos must be 0 or 1" >&2; exit 2 ;;
esac
RUNS=${2:-5} SCENARIOS=fanin-qos$QOS BROKERS=${BROKERS:-"ferry mosquitto"} exec "$(dirname "$0")/run.sh"
