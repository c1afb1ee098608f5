"""A last-will client on Qpid Proton (Debian's python3-qpid-proton): an
independent AMQP 1.0 client of Ferry's $lwt address.

usage:
  lwt_client.py HOST:PORT CLIENT_ID TOPIC PAYLOAD [--qos N] [--retain] [--delay S] [--close]

It logs in with SASL ANONYMOUS, attaches a sender link named CLIENT_ID to
$lwt and sends one will (subject "will", to TOPIC, PAYLOAD in a data
section, annotations x-opt-mqtt-qos, x-opt-retain-message and, with
--delay, x-opt-will-delay). Once the will is accepted it prints "will
accepted" and waits to be killed; with --close it closes the link and the
connection cleanly instead, prints "closed" and exits 0. A will not
accepted prints "will <outcome>" and exits 4; a failed or lost connection
prints "connection failed" and exits 5. Bounded by 60 s (exit 3).
"""
import argparse
import sys

from proton import Message, int32, symbol
from proton.handlers import MessagingHandler
from proton.reactor import Container


class Client(MessagingHandler):
    def __init__(self, args):
        super().__init__(auto_settle=True)
        self.args = args
        self.code = 0
        self.conn = None
        self.sender = None
        self.sent = False

    def on_start(self, event):
        self.conn = event.container.connect(self.args.url, reconnect=False, sasl_enabled=True,
                                            allowed_mechs="ANONYMOUS")
        self.sender = event.container.create_sender(self.conn, "$lwt", name=self.args.client_id)
        event.container.schedule(60, self)

    def on_timer_task(self, event):
        print("timeout", flush=True)
        self.code = 3
        event.container.stop()

    def on_sendable(self, event):
        if self.sent:
            return
        self.sent = True
        ann = {symbol("x-opt-mqtt-qos"): int32(self.args.qos),
               symbol("x-opt-retain-message"): self.args.retain}
        if self.args.delay is not None:
            ann[symbol("x-opt-will-delay")] = int32(self.args.delay)
        m = Message(body=self.args.payload.encode(), subject="will", address=self.args.topic,
                    annotations=ann, durable=self.args.qos > 0)
        m.inferred = True  # bytes as a data section
        event.sender.send(m)

    def on_accepted(self, event):
        print("will accepted", flush=True)
        if self.args.close:
            self.sender.close()

    def on_rejected(self, event):
        self.refused(event, "rejected")

    def on_released(self, event):
        self.refused(event, "released")

    def refused(self, event, outcome):
        print("will " + outcome, flush=True)
        self.code = 4
        event.container.stop()

    def on_link_closed(self, event):
        if self.args.close:
            self.conn.close()

    def on_connection_closed(self, event):
        if self.args.close and self.code == 0:
            print("closed", flush=True)
        event.container.stop()

    def on_transport_error(self, event):
        print("connection failed", flush=True)
        self.code = 5
        event.container.stop()


def main(argv):
    p = argparse.ArgumentParser(prog="lwt_client.py")
    p.add_argument("url")
    p.add_argument("client_id")
    p.add_argument("topic")
    p.add_argument("payload")
    p.add_argument("--qos", type=int, default=0)
    p.add_argument("--retain", action="store_true")
    p.add_argument("--delay", type=int)
    p.add_argument("--close", action="store_true")
    h = Client(p.parse_args(argv))
    Container(h).run()
    return h.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
