"""qmgr's routing and outbound scheduler (issue 5): transport_maps, relayhost,
delay warnings, the last deferral reason in mailq, per-destination
concurrency windows (slow start, dead destinations, a hanging destination
that must not hold up another one).

Remote hosts are scripted SMTP peers (smtp_peer.SmtpPeer) on loopback,
reached through transport_maps entries `smtp:[127.0.0.1]:PORT` and a
relayhost of the same form, so no DNS is involved. Delivery to them is done
by tegami's real smtp client; qmgr's decisions are read from the maillog.
"""

import os
import re
import smtplib
import socket
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Sandbox  # noqa: E402
from smtp_peer import SmtpPeer  # noqa: E402

PASSWORD = "Secret-pw-123"


def unused_port():
    """A loopback TCP port nobody listens on (for a destination that is down)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def token():
    return uuid.uuid4().hex[:16]


class QmgrTestBase(unittest.TestCase):
    box = None

    @classmethod
    def make_box(cls, params, transport):
        box = Sandbox(params=params)
        try:
            table = os.path.join(box.dir, "transport")
            with open(table, "w") as f:
                f.write(transport)
            box.mailctl("map", "build", table, check=True)
            box.set_param("transport_maps", "hash:" + table)
            box.user_add("alice", PASSWORD)
            box.start()
        except BaseException:
            box.close()
            raise
        return box

    def send(self, sender, rcpts, tok, box=None, notify=None):
        """Submit over SMTP from loopback (mynetworks); returns the queue ID."""
        box = box or self.box
        msg = ("From: <%s>\r\nTo: %s\r\nSubject: sched %s\r\nMessage-ID: <%s@test>\r\n\r\n"
               "body %s\r\n" % (sender or "nobody@example.test", ", ".join(rcpts), tok, tok, tok))
        with smtplib.SMTP(box.host, box.port("smtp"), timeout=30) as s:
            s.ehlo("client.test")
            code, text = s.mail(sender)
            self.assertEqual(code, 250, text)
            for r in rcpts:
                code, text = s.rcpt(r, options=[notify] if notify else [])
                self.assertEqual(code, 250, (r, text))
            code, text = s.data(msg.encode())
            self.assertEqual(code, 250, text)
        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
        self.assertIsNotNone(m, text)
        return m.group(1).decode()

    def wait_log(self, pattern, timeout=30, count=1, box=None):
        box = box or self.box
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            lines = [ln for ln in box.log().splitlines() if rx.search(ln)]
            if len(lines) >= count:
                return lines
            if time.time() > deadline:
                self.fail("%d of %d log lines matching %r; tail:\n%s" % (
                    len(lines), count, pattern, "\n".join(box.log().splitlines()[-40:])))
            time.sleep(0.1)

    def mail_of(self, user, needle, timeout=30, count=1, box=None):
        box = box or self.box
        paths = box.find_messages(user, needle, timeout=timeout, count=count)
        out = []
        for p in paths:
            with open(p, "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
        return out


class RoutingTest(QmgrTestBase):
    """transport_maps, relayhost, error transport, delay warnings, mailq reasons."""

    @classmethod
    def setUpClass(cls):
        cls.relay = SmtpPeer(hostname="relay.test").start()
        cls.slow = SmtpPeer(hostname="slow.test",
                            rcpt_reply=(451, "4.7.1 greylisted, come back later")).start()
        transport = ("tolocal.test local:\n"
                     ".blocked.test error:5.7.1 blocked by local policy\n"
                     "slow.test smtp:[127.0.0.1]:%d\n" % cls.slow.port)
        params = {
            "relayhost": "[127.0.0.1]:%d" % cls.relay.port,
            "delay_warning_time": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        }
        try:
            cls.box = cls.make_box(params, transport)
        except BaseException:
            cls.relay.stop()
            cls.slow.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.box.close()
        cls.relay.stop()
        cls.slow.stop()

    def test_relayhost_receives_mail_for_any_remote_domain(self):
        tok = token()
        qid = self.send("alice@example.test", ["carol@far-away.test"], tok)
        done = [t for t in self.relay.wait_transactions(1, timeout=30, delivered=True)
                if tok.encode() in (t.data or b"")]
        self.assertEqual(len(done), 1, self.relay.transactions)
        self.assertEqual(done[0].rcpts, ["carol@far-away.test"])
        line = self.wait_log(qid + r": to=<carol@far-away\.test>.*status=sent")[0]
        self.assertIn("127.0.0.1", line.split("relay=")[1].split(",")[0])

    def test_transport_maps_parent_domain_error_bounces_with_its_text(self):
        tok = token()
        qid = self.send("alice@example.test", ["x@deep.blocked.test"], tok)
        self.wait_log(qid + r": to=<x@deep\.blocked\.test>.*dsn=5\.7\.1, status=bounced "
                      r"\(blocked by local policy\)")
        dsn = self.mail_of("alice", tok)
        self.assertTrue(dsn, "no bounce reached alice")
        self.assertRegex(dsn[0], r"Status:\s*5\.7\.1")
        self.assertIn("blocked by local policy", dsn[0])
        self.assertIn("Action: failed", dsn[0])
        # The relayhost never saw it.
        self.assertFalse([t for t in self.relay.transactions if tok.encode() in (t.data or b"")])

    def test_transport_maps_local_delivers_to_the_local_part(self):
        tok = token()
        qid = self.send("bob@example.test", ["alice@tolocal.test"], tok)
        self.wait_log(qid + r": to=<alice@tolocal\.test>, relay=local")
        got = self.mail_of("alice", tok, timeout=15)
        self.assertTrue(got, "alice@tolocal.test (transport local:) was not delivered to alice; "
                        "log:\n" + "\n".join(self.box.log().splitlines()[-20:]))

    def test_delay_warning_is_sent_once_with_the_reason_and_mailq_shows_it(self):
        tok = token()
        qid = self.send("alice@example.test", ["u@slow.test"], tok)
        # The peer answers 451 to every RCPT: deferred, retried every second or two.
        self.wait_log(qid + r": to=<u@slow\.test>, relay=\S*127\.0\.0\.1.*status=deferred")
        warn = self.mail_of("alice", tok, timeout=30)
        self.assertTrue(warn, "no delay warning reached alice")
        text = warn[0]
        self.assertIn("Subject: Delayed Mail (still being retried)", text)
        self.assertIn("Action: delayed", text)
        self.assertRegex(text, r"Status:\s*4\.\d+\.\d+")
        self.assertIn("greylisted", text)
        self.assertIn("Final-Recipient: rfc822; u@slow.test", text)
        self.assertIn("Will-Retry-Until: ", text)
        # More attempts follow; none sends another warning.
        self.wait_log(qid + r": to=<u@slow\.test>.*status=deferred", count=4, timeout=40)
        time.sleep(1)
        self.assertEqual(len(self.mail_of("alice", tok, timeout=0)), 1)
        self.assertEqual(self.box.log().count(qid + ": sender delay notification"), 1)
        # mailq / mailctl queue list show the last reason under the recipient.
        deadline = time.time() + 20
        while True:
            listing = self.box.mailctl("queue", "list", check=True).stdout
            entries = [e for e in self.box.queue_json() if e["queue_id"] == qid]
            if entries and entries[0]["queue"] == "deferred" and "(" in listing:
                break
            self.assertLess(time.time(), deadline, listing)
            time.sleep(0.2)
        self.assertRegex(listing, r"\(4\.\d\.\d [^)\n]*greylisted[^\n]*\)\n\s+u@slow\.test")
        self.assertIn("greylisted", entries[0]["recipients"][0]["reason"])

    def test_no_delay_warning_for_the_null_sender_or_notify_never(self):
        tok = token()
        qid_null = self.send("", ["v@slow.test"], tok)
        qid_never = self.send("alice@example.test", ["w@slow.test"], tok, notify="NOTIFY=NEVER")
        for qid, rcpt in ((qid_null, "v"), (qid_never, "w")):
            self.wait_log(qid + r": to=<%s@slow\.test>.*status=deferred" % rcpt, count=3,
                          timeout=40)
        log = self.box.log()
        self.assertNotIn(qid_null + ": sender delay notification", log)
        self.assertNotIn(qid_never + ": sender delay notification", log)
        self.assertEqual(self.mail_of("alice", tok, timeout=0), [])


class SchedulerTest(QmgrTestBase):
    """Concurrency windows: slow start, a dead destination, a hanging one."""

    @classmethod
    def setUpClass(cls):
        cls.fast = SmtpPeer(hostname="fast.test").start()
        cls.hang = SmtpPeer(hostname="hang.test", hang="greeting").start()
        cls.dead_port = unused_port()
        transport = ("fast.test smtp:[127.0.0.1]:%d\n"
                     "hang.test smtp:[127.0.0.1]:%d\n"
                     "dead.test smtp:[127.0.0.1]:%d\n" % (cls.fast.port, cls.hang.port,
                                                         cls.dead_port))
        params = {
            "initial_destination_concurrency": "2",
            "smtp_destination_concurrency_limit": "4",
            "qmgr_smtp_connection_limit": "6",
            "minimal_backoff_time": "300s",
            # A hung greeting is held far longer than this test runs.
            "smtp_connect_timeout": "5s",
            "smtp_helo_timeout": "120s",
        }
        try:
            cls.box = cls.make_box(params, transport)
        except BaseException:
            cls.fast.stop()
            cls.hang.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.box.close()
        cls.fast.stop()
        cls.hang.stop()

    def test_slow_start_opens_the_window_one_by_one(self):
        tok = token()
        qids = [self.send("alice@example.test", ["r%d@fast.test" % i], tok) for i in range(8)]
        deadline = time.time() + 60
        while len([t for t in self.fast.delivered() if tok.encode() in (t.data or b"")]) < 8:
            self.assertLess(time.time(), deadline, self.fast.transactions)
            time.sleep(0.1)
        for qid in qids:
            self.wait_log(qid + r": to=<r\d@fast\.test>.*status=sent")
        port = self.fast.port
        # Starts at 2, +1 per delivery that reached the destination, capped at 4.
        self.wait_log(r"smtp:\[127\.0\.0\.1\]:%d: concurrency window 3" % port)
        self.wait_log(r"smtp:\[127\.0\.0\.1\]:%d: concurrency window 4" % port)
        self.assertNotIn("smtp:[127.0.0.1]:%d: concurrency window 5" % port, self.box.log())

    def test_hanging_destination_ties_up_only_its_window(self):
        before = len(self.hang.connections)
        for i in range(5):
            self.send("alice@example.test", ["h%d@hang.test" % i], token())
        self.hang.wait_connections(before + 2, timeout=30)
        time.sleep(2)
        # initial_destination_concurrency = 2: never more at once while nothing succeeds.
        self.assertEqual(len(self.hang.connections), before + 2)
        tok = token()
        t0 = time.time()
        qid = self.send("alice@example.test", ["quick@fast.test"], tok)
        self.wait_log(qid + r": to=<quick@fast\.test>.*status=sent", timeout=10)
        self.assertLess(time.time() - t0, 10)
        self.assertEqual(len(self.hang.connections), before + 2)

    def test_dead_destination_is_skipped_and_its_mail_deferred_at_once(self):
        port = self.dead_port
        qid1 = self.send("alice@example.test", ["a@dead.test"], token())
        self.wait_log(qid1 + r": to=<a@dead\.test>.*status=deferred")
        self.wait_log(r"smtp:\[127\.0\.0\.1\]:%d: destination is dead" % port)
        qid2 = self.send("alice@example.test", ["b@dead.test"], token())
        line = self.wait_log(qid2 + r": to=<b@dead\.test>.*status=deferred")[0]
        self.assertIn("destination marked dead, not tried again yet", line)
        self.assertIn("relay=none", line)
        # Both wait in deferred/ for their retry time.
        deferred = os.path.join(self.box.dir, "queue", "deferred")
        deadline = time.time() + 10
        while not (os.path.exists(os.path.join(deferred, qid1)) and
                   os.path.exists(os.path.join(deferred, qid2))) and time.time() < deadline:
            time.sleep(0.1)
        self.assertTrue(os.path.exists(os.path.join(deferred, qid2)))


class DeadDestinationFlushTest(QmgrTestBase):
    """mailctl flush forgets that a destination was dead (as postqueue -f does)."""

    @classmethod
    def setUpClass(cls):
        cls.port = unused_port()
        cls.peer = None
        cls.box = cls.make_box({"delay_warning_time": "0"},
                               "revive.test smtp:[127.0.0.1]:%d\n" % cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.box.close()
        if cls.peer is not None:
            cls.peer.stop()

    def test_flush_retries_a_dead_destination_at_once(self):
        tok = token()
        qid = self.send("alice@example.test", ["x@revive.test"], tok)
        self.wait_log(r"smtp:\[127\.0\.0\.1\]:%d: destination is dead" % self.port)
        self.wait_log(qid + r": to=<x@revive\.test>.*status=deferred")
        # The destination comes back; without the flush it would stay dead for
        # minimal_backoff_time (300 s).
        type(self).peer = SmtpPeer(port=self.port, hostname="revive.test").start()
        self.box.mailctl("flush", check=True)
        self.wait_log(qid + r": to=<x@revive\.test>.*status=sent", timeout=20)
        self.assertEqual(len([t for t in self.peer.delivered() if tok.encode() in (t.data or b"")]), 1)


class SmtpResultsTest(QmgrTestBase):
    """Bounces carry smtp's per-recipient reasons, also when the lifetime runs out."""

    @classmethod
    def setUpClass(cls):
        cls.peer = SmtpPeer(hostname="mixed.test", rcpt_reply={
            "nouser@mixed.test": (550, "5.1.1 no such mailbox here"),
            "full@mixed.test": (552, "5.2.2 mailbox full"),
            "later@mixed.test": (451, "4.3.0 local problem, try later"),
            None: (250, "2.1.5 ok")}).start()
        transport = "mixed.test smtp:[127.0.0.1]:%d\n" % cls.peer.port
        # maximal_queue_lifetime = 0: one attempt only, then the 4.4.7 bounce.
        try:
            cls.box = cls.make_box({"maximal_queue_lifetime": "0",
                                    "delay_warning_time": "0"}, transport)
        except BaseException:
            cls.peer.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.box.close()
        cls.peer.stop()

    def test_bounce_names_each_failed_recipient_with_the_remote_reply(self):
        tok = token()
        rcpts = ["ok@mixed.test", "nouser@mixed.test", "full@mixed.test", "later@mixed.test"]
        qid = self.send("alice@example.test", rcpts, tok)
        self.wait_log(qid + r": removed")
        done = [t for t in self.peer.delivered() if tok.encode() in (t.data or b"")]
        self.assertEqual(len(done), 1)
        self.assertEqual(done[0].rcpts, ["ok@mixed.test"])
        dsns = self.mail_of("alice", "Final-Recipient: rfc822; nouser@mixed.test", timeout=20)
        dsns = [d for d in dsns if tok in d]
        self.assertEqual(len(dsns), 1, "expected one bounce for the three failed recipients")
        d = dsns[0]
        self.assertNotIn("Final-Recipient: rfc822; ok@mixed.test", d)
        self.assertIn("no such mailbox here", d)
        self.assertRegex(d, r"Final-Recipient: rfc822; nouser@mixed\.test\nAction: failed\n"
                            r"Status: 5\.1\.1")
        self.assertIn("mailbox full", d)
        # The 451 recipient expired at once (lifetime 0): 4.4.7 with the remote reason.
        self.assertRegex(d, r"Final-Recipient: rfc822; later@mixed\.test\nAction: failed\n"
                            r"Status: 4\.4\.7")
        self.assertIn("local problem, try later", d)
        self.box.expect_log_text(qid + ": to=<later@mixed.test>")
        self.box.expect_log(qid + r": to=<later@mixed\.test>.*status=expired")


if __name__ == "__main__":
    unittest.main()
