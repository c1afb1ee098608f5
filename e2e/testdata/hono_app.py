"""A Hono northbound application on Qpid Proton (Debian's python3-qpid-proton
0.37): an independent AMQP 1.0 client of Ferry's application listener.

usage:
  hono_app.py URL receive ADDRESS COUNT [GROUP] [--timeout S]
  hono_app.py URL command TENANT DEVICE NAME BODY [--id KIND] [--body SECTION] [--timeout S]

URL is HOST:PORT (SASL ANONYMOUS) or amqp://USER:PASSWORD@HOST:PORT (SASL
PLAIN, allowed over plain TCP).

receive attaches a receiver on ADDRESS (with the link property
subscription-name = GROUP when GROUP is given), prints "attached" once the
peer has attached the link, then one JSON line per message, accepting each,
and exits 0 after COUNT messages.

command attaches a receiver on command_response/TENANT/<reply id> and a
sender on command/TENANT and, once both are attached, sends one
request/response command (to command/TENANT/DEVICE, subject NAME, payload
BODY). It prints the outcome (ACCEPTED, RELEASED, MODIFIED, or REJECTED
<condition> <description>) and, after ACCEPTED, the response as a JSON line
(with "sent_correlation_id", the id it sent, and "before_outcome" when the
response arrived before the outcome). --id says how the request is
identified: correlation (default; a string correlation-id), message-id (a
string message-id only, as Hono allows), uuid or ulong (a correlation-id of
that AMQP type). --body: data (default; a data section, as Hono specifies)
or value (an amqp-value string, Proton's default for a str body).

Every run is bounded by --timeout (default 15 s): on expiry it prints
"timeout" and exits 3. A refused link prints "link refused <condition>
<description>" and exits 4; a failed or lost connection prints "connection
failed ..." and exits 5; bad arguments exit 2. It never reconnects.
"""
import argparse
import json
import sys
import uuid

from cproton import pn_message_get_content_type, pn_message_get_creation_time
from proton import Delivery, Message, Url, ulong
from proton.handlers import MessagingHandler
from proton.reactor import Container, LinkOption


class LinkProperties(LinkOption):
    """Sets the link properties of the attach frame (keys become symbols)."""

    def __init__(self, props):
        self.props = props

    def apply(self, link):
        link.properties = self.props


def text(v):
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", "replace")
    return str(v)


def jsonable(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return text(v)


def describe(msg, delivery):
    """A received message as a dict for one JSON line."""
    app = msg.properties or {}
    return {
        "body": text(msg.body),
        "body_type": type(msg.body).__name__,
        # Message.content_type and creation_time turn absent values into
        # "None" and 0: read the C fields.
        "content_type": pn_message_get_content_type(msg._msg),
        "creation_time": pn_message_get_creation_time(msg._msg) or None,
        "durable": bool(msg.durable),
        "to": msg.address,
        "subject": msg.subject,
        "correlation_id": jsonable(msg.correlation_id),
        "correlation_id_type": type(msg.correlation_id).__name__,
        "application_properties": {str(k): jsonable(v) for k, v in app.items()},
        # Proton decodes an AMQP int as int32 and a long as long: Hono's qos,
        # status and ttd are ints.
        "application_property_types": {str(k): type(v).__name__ for k, v in app.items()},
        "settled": delivery.settled,
    }


def out(*args):
    print(*args, flush=True)


def condition(c):
    return "%s %s" % (c.name, c.description or "") if c else "- -"


class App(MessagingHandler):
    """What both commands share: the connection, the deadline, failures."""

    def __init__(self, url, timeout):
        super().__init__(prefetch=10, auto_accept=False)
        self.url = url
        self.timeout = timeout
        self.code = 0
        self.conn = None
        self.timer = None

    def connect(self, container):
        opts = {"reconnect": False, "sasl_enabled": True}
        if Url(self.url).username:
            opts.update(allowed_mechs="PLAIN", allow_insecure_mechs=True)
        else:
            opts.update(allowed_mechs="ANONYMOUS")
        self.conn = container.connect(self.url, **opts)
        self.timer = container.schedule(self.timeout, self)
        return self.conn

    def stop_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def finish(self, code):
        """Ends the run with code: closes the connection; run() returns once
        the socket is gone (on_disconnected)."""
        self.code = code
        self.stop_timer()
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def fail(self, code, *what):
        if self.conn is not None or self.timer is not None:
            out(*what)
            self.finish(code)

    def on_timer_task(self, event):
        self.timer = None
        self.fail(3, "timeout")
        event.container.stop()  # without waiting for the peer's close

    def on_transport_error(self, event):
        self.fail(5, "connection failed", condition(event.transport.condition))
        self.conn = None
        event.container.stop()

    def on_disconnected(self, event):
        self.fail(5, "connection failed", "disconnected")
        self.conn = None
        # The socket is gone: stop now. Left alone, the reactor would wait
        # for the cancelled deadline's next wakeup (up to 3.14 s).
        event.container.stop()

    def on_connection_error(self, event):
        self.fail(5, "connection failed", condition(event.connection.remote_condition))

    def on_connection_closing(self, event):
        self.fail(5, "connection failed", "closed by the peer")

    def on_session_error(self, event):
        self.fail(5, "connection failed", "session ended", condition(event.session.remote_condition))

    def on_session_closing(self, event):
        self.fail(5, "connection failed", "session ended")

    def on_link_error(self, event):
        self.fail(4, "link refused", condition(event.link.remote_condition))

    def on_link_closing(self, event):
        # A detach without an error: this application never expects one.
        self.fail(4, "link refused", "detached")

    @staticmethod
    def attached(event):
        # A refused attach comes back with a null source or target, then a
        # detach with the error.
        link = event.link
        return (link.remote_source if link.is_receiver else link.remote_target).address is not None


class Receive(App):
    def __init__(self, url, timeout, address, count, group):
        super().__init__(url, timeout)
        self.address, self.count, self.group = address, count, group
        self.got = 0

    def on_start(self, event):
        conn = self.connect(event.container)
        opts = [LinkProperties({"subscription-name": self.group})] if self.group else []
        event.container.create_receiver(conn, self.address, options=opts)

    def on_link_opened(self, event):
        if self.attached(event):
            out("attached")

    def on_message(self, event):
        out(json.dumps(describe(event.message, event.delivery), sort_keys=True))
        self.accept(event.delivery)
        self.got += 1
        if self.got >= self.count:
            self.finish(0)


class Command(App):
    def __init__(self, url, timeout, tenant, device, name, body, id_kind, section):
        super().__init__(url, timeout)
        self.tenant, self.device, self.name, self.body = tenant, device, name, body
        self.id_kind, self.section = id_kind, section
        self.reply_to = "command_response/%s/proton-%s" % (tenant, uuid.uuid4().hex[:12])
        if id_kind == "uuid":
            self.request_id = uuid.uuid4()
        elif id_kind == "ulong":
            self.request_id = ulong(uuid.uuid4().int >> 72)
        else:
            self.request_id = "req-" + uuid.uuid4().hex[:12]
        self.receiver = self.sender = None
        self.receiver_open = False
        self.sent = False
        self.outcome = None
        self.response = None

    def on_start(self, event):
        conn = self.connect(event.container)
        self.receiver = event.container.create_receiver(conn, self.reply_to)
        self.sender = event.container.create_sender(conn, "command/" + self.tenant)

    def on_link_opened(self, event):
        if event.link == self.receiver and self.attached(event):
            self.receiver_open = True
            self.send()

    def on_sendable(self, event):
        self.send()

    def send(self):
        # Only once the response link is attached, so that no response is
        # lost, and once the sender has credit.
        if self.sent or not self.receiver_open or self.sender.credit <= 0:
            return
        self.sent = True
        m = Message(
            address="command/%s/%s" % (self.tenant, self.device),
            subject=self.name,
            reply_to=self.reply_to,
            content_type="text/plain",
        )
        if self.id_kind == "message-id":
            m.id = self.request_id
        else:
            m.correlation_id = self.request_id
        if self.section == "value":
            m.body = self.body
        else:
            m.body = self.body.encode()
            m.inferred = True  # binary in a data section, not an amqp-value
        self.sender.send(m)

    def on_accepted(self, event):
        self.decided("ACCEPTED")

    def on_rejected(self, event):
        self.decided("REJECTED " + condition(event.delivery.remote.condition))

    def on_released(self, event):
        # Proton reports both released and modified here.
        self.decided("MODIFIED" if event.delivery.remote_state == Delivery.MODIFIED else "RELEASED")

    def decided(self, outcome):
        if self.outcome is not None:
            return
        self.outcome = outcome
        out(outcome)
        if outcome != "ACCEPTED":
            self.finish(0)
        elif self.response is not None:
            self.respond()

    def on_message(self, event):
        self.accept(event.delivery)
        resp = describe(event.message, event.delivery)
        if self.response is not None:
            out("extra response", json.dumps(resp, sort_keys=True))
            return
        resp["sent_correlation_id"] = jsonable(self.request_id)
        self.response = resp
        if self.outcome is None:
            resp["before_outcome"] = True  # printed after the outcome
        else:
            self.respond()

    def respond(self):
        out(json.dumps(self.response, sort_keys=True))
        self.finish(0)


def main(argv):
    # The usage lines of the docstring, without its "usage:".
    usage = __doc__.split("\n\n")[1].split("\n", 1)[1]
    p = argparse.ArgumentParser(prog="hono_app.py", usage="\n" + usage)
    p.add_argument("url")
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("receive")
    r.add_argument("address")
    r.add_argument("count", type=int)
    r.add_argument("group", nargs="?")
    r.add_argument("--timeout", type=float, default=15)
    c = sub.add_parser("command")
    for a in ("tenant", "device", "name", "body"):
        c.add_argument(a)
    c.add_argument("--id", choices=("correlation", "message-id", "uuid", "ulong"), default="correlation")
    c.add_argument("--body", dest="section", choices=("data", "value"), default="data")
    c.add_argument("--timeout", type=float, default=15)
    a = p.parse_args(argv[1:])
    if a.what == "receive":
        h = Receive(a.url, a.timeout, a.address, a.count, a.group)
    else:
        h = Command(a.url, a.timeout, a.tenant, a.device, a.name, a.body, a.id, a.section)
    Container(h).run()
    return h.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
