"""Qpid Proton client driving Ferry's Listener (see proton_test.go).

Usage: proton_client.py URL. Prints OK and exits 0 when every step passes.
"""
import sys
import time

from proton import Message
from proton.reactor import AtMostOnce
from proton.utils import BlockingConnection, LinkDetached

url = sys.argv[1]
conn = BlockingConnection(url, user="dev@tenant", password="secret",
                          allowed_mechs="PLAIN", timeout=20)

# Unsettled sends, then a 2 MiB message split over many frames.
snd = conn.create_sender("py")
for i in range(20):
    snd.send(Message(body="m%d" % i, properties={"i": i}, subject="s"))
big = "x" * (2 << 20)
snd.send(Message(body=big))

# Pre-settled sends.
fast = conn.create_sender("py", name="fast", options=AtMostOnce())
for i in range(5):
    fast.send(Message(body="settled%d" % i))

rcv = conn.create_receiver("py", credit=10)
for i in range(20):
    m = rcv.receive(timeout=20)
    assert m.body == "m%d" % i, m.body
    assert m.properties["i"] == i, m.properties
    rcv.accept()
m = rcv.receive(timeout=20)
assert m.body == big, len(m.body)
rcv.accept()
for i in range(5):
    m = rcv.receive(timeout=20)
    assert m.body == "settled%d" % i, m.body
    rcv.accept()

# Refused attach: the handler's condition reaches the client.
try:
    conn.create_sender("missing")
    raise SystemExit("attach to a missing node succeeded")
except LinkDetached as e:
    assert "amqp:not-found" in str(e), str(e)

# Dynamic node and anonymous relay.
dyn = conn.create_receiver(None, dynamic=True)
addr = dyn.link.remote_source.address
assert addr, "no dynamic address"
relay = conn.create_sender(None)
relay.send(Message(address=addr, body="relayed"))
m = dyn.receive(timeout=20)
assert m.body == "relayed", m.body
dyn.accept()

# Rejected outcome.
rej = conn.create_sender("reject")
try:
    rej.send(Message(body="no"))
    raise SystemExit("rejected message reported as accepted")
except Exception as e:  # proton raises SendException with the state
    assert "REJECTED" in str(e) or "reject" in str(e).lower(), str(e)

# Idle time-out: the listener closes peers silent for 1 s; Proton's
# heartbeats must keep this connection open through 2.5 s of inactivity.
deadline = time.time() + 2.5
conn.wait(lambda: time.time() > deadline, timeout=10)
conn.create_sender("after-idle").send(Message(body="still here"))

conn.close()
print("OK")
