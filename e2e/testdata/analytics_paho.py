"""Plays a fixed sequence of telemetry for Ferry's analytics tests with
Eclipse Paho (Debian's python3-paho-mqtt 1.6).

usage: analytics_paho.py HOST PORT TENANT SEQUENCE

SEQUENCE is a JSON list of [device, payload] pairs. Each payload is
published at QoS 1 on telemetry/TENANT/<device>, in order, each after the
previous one was acknowledged, so that Ferry sees exactly this order.
Prints OK, or FAIL and exits 1; bounded by a 15 s deadline.
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt

HOST, PORT, TENANT, SEQUENCE = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
DEADLINE = 15


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


connected = threading.Event()
c = mqtt.Client(client_id="analytics-paho", protocol=mqtt.MQTTv311)
c.on_connect = lambda client, userdata, flags, rc: connected.set() if rc == 0 else fail("CONNACK %d" % rc)
c.connect(HOST, PORT)
c.loop_start()
if not connected.wait(DEADLINE):
    fail("no CONNACK")
for device, payload in SEQUENCE:
    info = c.publish("telemetry/%s/%s" % (TENANT, device), json.dumps(payload), qos=1)
    info.wait_for_publish(DEADLINE)
    if not info.is_published():
        fail("no PUBACK for %s %s" % (device, payload))
c.disconnect()
c.loop_stop()
print("OK")
