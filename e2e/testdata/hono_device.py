"""A Hono MQTT device on Eclipse Paho (Debian's python3-paho-mqtt 1.6),
MQTT 3.1.1: it subscribes for commands and answers each request.

usage: hono_device.py HOST PORT TENANT DEVICE

Subscribes to command/TENANT/DEVICE/req/# at QoS 1 and prints "ready"
once subscribed. For a request/response command
(command/TENANT/DEVICE/req/<req-id>/<name>) it publishes "done:<name>:<payload>"
to command/TENANT/DEVICE/res/<req-id>/200; it prints "one-way <name>" for
one-way commands. Runs until killed.
"""
import sys

import paho.mqtt.client as mqtt

HOST, PORT, TENANT, DEVICE = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        print("connect refused", rc, flush=True)
        sys.exit(1)
    client.subscribe("command/%s/%s/req/#" % (TENANT, DEVICE), qos=1)


def on_subscribe(client, userdata, mid, granted):
    print("ready", granted[0], flush=True)


def on_message(client, userdata, msg):
    segs = msg.topic.split("/")
    # command/<tenant>/<device>/req/<req-id>/<name>
    req_id, name = segs[4], segs[5]
    if req_id == "":
        print("one-way", name, msg.payload.decode(), flush=True)
        return
    client.publish("command/%s/%s/res/%s/200" % (TENANT, DEVICE, req_id),
                   ("done:%s:%s" % (name, msg.payload.decode())).encode(), qos=1)
    print("answered", name, flush=True)


c = mqtt.Client(client_id="hono-device-" + DEVICE, protocol=mqtt.MQTTv311)
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_message = on_message
c.connect(HOST, PORT, keepalive=30)
c.loop_forever()
