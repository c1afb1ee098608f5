"""Drives Ferry with Eclipse Paho (Debian's python3-paho-mqtt 1.6).

usage: paho_client.py HOST PORT VERSION   (VERSION: 311 or 5)

Checks publish/subscribe at QoS 0/1/2 with downgrade, retained messages, and a
persistent session that receives QoS 1 messages published while it was
offline. Prints OK on success, exits 1 with a message otherwise.
"""
import sys
import threading
import time

import paho.mqtt.client as mqtt

HOST, PORT, VERSION = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PROTO = mqtt.MQTTv5 if VERSION == "5" else mqtt.MQTTv311
PREFIX = "paho%s" % VERSION
DEADLINE = 10


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


class Client:
    def __init__(self, cid, clean=True):
        self.messages = []
        self.cond = threading.Condition()
        self.subacks = 0
        self.connected = threading.Event()
        if PROTO == mqtt.MQTTv5:
            self.c = mqtt.Client(client_id=cid, protocol=PROTO)
        else:
            self.c = mqtt.Client(client_id=cid, protocol=PROTO, clean_session=clean)
        self.c.on_connect = self.on_connect
        self.c.on_message = self.on_message
        self.c.on_subscribe = self.on_subscribe
        self.session_present = None
        self.clean = clean

    def on_connect(self, c, userdata, flags, rc, properties=None):
        if rc != 0:
            fail("connect refused: %s" % rc)
        self.session_present = flags.get("session present")
        self.connected.set()

    def on_message(self, c, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload.decode(), msg.qos, msg.retain))
            self.cond.notify_all()

    def on_subscribe(self, c, userdata, mid, granted, properties=None):
        with self.cond:
            self.subacks += 1
            self.granted = granted
            self.cond.notify_all()

    def connect(self):
        if PROTO == mqtt.MQTTv5:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.CONNECT)
            if not self.clean:
                props.SessionExpiryInterval = 300
            self.c.connect(HOST, PORT, keepalive=30, clean_start=self.clean, properties=props)
        else:
            self.c.connect(HOST, PORT, keepalive=30)
        self.c.loop_start()
        if not self.connected.wait(DEADLINE):
            fail("no CONNACK")

    def subscribe(self, topic, qos):
        with self.cond:
            n = self.subacks
            self.c.subscribe(topic, qos)
            if not self.cond.wait_for(lambda: self.subacks > n, DEADLINE):
                fail("no SUBACK for %s" % topic)

    def wait_messages(self, count):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.messages) >= count, DEADLINE):
                fail("got %d messages, want %d: %r" % (len(self.messages), count, self.messages))
            return list(self.messages)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def publish(pub, topic, payload, qos, retain=False):
    info = pub.c.publish(topic, payload, qos=qos, retain=retain)
    info.wait_for_publish(DEADLINE)
    if not info.is_published():
        fail("publish of %s not acknowledged" % topic)


def main():
    sub = Client(PREFIX + "-sub")
    sub.connect()
    sub.subscribe(PREFIX + "/q1/#", 1)
    pub = Client(PREFIX + "-pub")
    pub.connect()
    for qos in (0, 1, 2):
        publish(pub, "%s/q1/%d" % (PREFIX, qos), "m%d" % qos, qos)
    got = sub.wait_messages(3)
    want = [("%s/q1/%d" % (PREFIX, q), "m%d" % q, min(q, 1), False) for q in (0, 1, 2)]
    if got != want:
        fail("got %r, want %r (in order, QoS downgraded to 1)" % (got, want))

    # Retained message delivered on subscribe with the retain flag.
    publish(pub, PREFIX + "/ret", "kept", 1, retain=True)
    sub.subscribe(PREFIX + "/ret", 2)
    got = sub.wait_messages(4)[3]
    if got != (PREFIX + "/ret", "kept", 1, True):
        fail("retained delivery %r" % (got,))
    sub.stop()

    # Persistent session: QoS 1 messages published while offline arrive on resume.
    p = Client(PREFIX + "-persistent", clean=False)
    p.connect()
    p.subscribe(PREFIX + "/offline", 1)
    p.stop()
    for i in range(5):
        publish(pub, PREFIX + "/offline", "o%d" % i, 1)
    p2 = Client(PREFIX + "-persistent", clean=False)
    p2.connect()
    if not p2.session_present:
        fail("session present not set on resume")
    got = p2.wait_messages(5)
    if [m[1] for m in got] != ["o%d" % i for i in range(5)]:
        fail("offline messages %r" % (got,))
    p2.stop()
    pub.stop()
    print("OK")


main()
