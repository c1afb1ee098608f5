"""MQTT over WebSocket with Paho (Debian's python3-paho-mqtt).

usage: paho_ws.py HOST PORT VERSION   (VERSION: 311 or 5)

Subscribes to ws/in over ws://HOST:PORT/mqtt, waits for one message from
another client, publishes ws/out at QoS 1 and receives it back through a
ws/# subscription. Prints OK on success.
"""
import sys
import threading

import paho.mqtt.client as mqtt

HOST, PORT, VERSION = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PROTO = mqtt.MQTTv5 if VERSION == "5" else mqtt.MQTTv311

got = []
cond = threading.Condition()
subscribed = threading.Event()


def on_connect(c, userdata, flags, rc, properties=None):
    if rc != 0:
        print("FAIL: connect", rc)
        sys.exit(1)
    c.subscribe("ws/#", 1)


def on_subscribe(c, userdata, mid, granted, properties=None):
    subscribed.set()


def on_message(c, userdata, msg):
    with cond:
        got.append((msg.topic, msg.payload.decode()))
        cond.notify_all()


c = mqtt.Client(client_id="ws-" + VERSION, protocol=PROTO, transport="websockets")
c.ws_set_options(path="/mqtt")
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_message = on_message
c.connect(HOST, PORT, keepalive=30)
c.loop_start()
if not subscribed.wait(10):
    print("FAIL: no SUBACK")
    sys.exit(1)
with cond:
    if not cond.wait_for(lambda: len(got) >= 1, 10):
        print("FAIL: nothing from the TCP publisher")
        sys.exit(1)
c.publish("ws/out", "from-ws", qos=1).wait_for_publish(10)
with cond:
    if not cond.wait_for(lambda: len(got) >= 2, 10):
        print("FAIL: own message not received", got)
        sys.exit(1)
if got != [("ws/in", "from-tcp"), ("ws/out", "from-ws")]:
    print("FAIL:", got)
    sys.exit(1)
c.disconnect()
c.loop_stop()
print("OK")
