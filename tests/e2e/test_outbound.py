"""Outbound delivery (issue 5): qmgr routing, the smtp client, MX lookup.

Everything runs on loopback:
  - a real `unbound` (dns_fixture.DnsServer) serves the test zones; both
    sandboxes use it through `resolver_address`;
  - sandbox a.test on 127.0.0.2 and sandbox b.test on 127.0.0.3, with the
    same port offset N and smtp_port = N + 25, so each one's smtp client
    reaches the other's smtpd;
  - scripted remote hosts (smtp_peer.SmtpPeer) on 127.0.0.4 and up, port
    N + 25, for replies a real tegami would not give (451, 550, hangs).

Test zones (all under .test, resolved only by the fixture):
  a.test       MX 10 mx.a.test (127.0.0.2)
  b.test       MX 10 mx.b.test (127.0.0.3)
  backup.test  MX 10 dead.backup.test (127.0.0.9, nothing listens),
               MX 20 mx.b.test   (b.test accepts backup.test as local)
  tempfail.test, reject.test, tls.test, hang.test: MX -> one SmtpPeer each
  null.test    MX 0 .           (RFC 7505 null MX)
  loop.test    MX 10 mx.a.test  (points back at a.test itself)
  amx.test     no MX, an A record only (implicit MX)
  nosuch.test  NXDOMAIN; broken.test: the server refuses (a DNS failure)
  <name>.test  for each name in PEER_DOMAINS: MX -> one SmtpPeer on 127.0.0.(20+i)

a.test also has transport_maps (routed.test -> [127.0.0.8]:N+26,
forbidden.test -> error:5.7.1), smtp_tls_policy_maps (plainenc.test and
tlsenc.test: encrypt), smtp_destination_concurrency_limit = 3 and 3 s smtp
timeouts. RelayhostTest is a separate sandbox with relayhost set.
After every test, the maillogs must show no process that died.
"""

import os
import poplib
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from dns_fixture import DnsServer  # noqa: E402
from smtp_peer import SmtpPeer, make_cert  # noqa: E402

A_ADDR = "127.0.0.2"
B_ADDR = "127.0.0.3"
TEMPFAIL_ADDR = "127.0.0.4"
REJECT_ADDR = "127.0.0.5"
TLS_ADDR = "127.0.0.6"
HANG_ADDR = "127.0.0.7"
TRANSPORT_ADDR = "127.0.0.8"
DEAD_ADDR = "127.0.0.9"  # nothing ever listens here
AMX_ADDR = "127.0.0.11"
PASSWORD = "Secret-pw-123"
CONCURRENCY_LIMIT = 3  # smtp_destination_concurrency_limit on a.test

ZONES = {
    "a.test": ["a.test. MX 10 mx.a.test.", "mx.a.test. A %s" % A_ADDR],
    "b.test": ["b.test. MX 10 mx.b.test.", "mx.b.test. A %s" % B_ADDR],
    "backup.test": ["backup.test. MX 10 dead.backup.test.",
                    "backup.test. MX 20 mx.b.test.",
                    "dead.backup.test. A %s" % DEAD_ADDR],
    "tempfail.test": ["tempfail.test. MX 10 mx.tempfail.test.",
                      "mx.tempfail.test. A %s" % TEMPFAIL_ADDR],
    "reject.test": ["reject.test. MX 10 mx.reject.test.",
                    "mx.reject.test. A %s" % REJECT_ADDR],
    "tls.test": ["tls.test. MX 10 mx.tls.test.", "mx.tls.test. A %s" % TLS_ADDR],
    "hang.test": ["hang.test. MX 10 mx.hang.test.", "mx.hang.test. A %s" % HANG_ADDR],
    "null.test": ["null.test. MX 0 ."],
    "loop.test": ["loop.test. MX 10 mx.a.test."],
    # no MX: the A record is the implicit MX (RFC 5321 §5.1)
    "amx.test": ["amx.test. A %s" % AMX_ADDR],
}
# One scripted peer per domain below, each on its own address, so that one
# test's dead or throttled destination never affects another test.
PEER_DOMAINS = ["content", "mixed", "datarej", "dropdata", "garbage", "greet421", "bigreply",
                "hangdata", "multi", "quitdrop", "manylines", "conc", "nsb", "seven", "small",
                "plainenc", "tlsenc", "pipe", "heloonly", "kill9"]
for _i, _name in enumerate(PEER_DOMAINS):
    ZONES["%s.test" % _name] = ["%s.test. MX 10 mx.%s.test." % (_name, _name),
                                "mx.%s.test. A 127.0.0.%d" % (_name, 20 + _i)]


def peer_addr(name):
    """The address of the MX of <name>.test for a name in PEER_DOMAINS."""
    return "127.0.0.%d" % (20 + PEER_DOMAINS.index(name))


PEER_ADDRS = (TEMPFAIL_ADDR, REJECT_ADDR, TLS_ADDR, HANG_ADDR, TRANSPORT_ADDR, DEAD_ADDR,
              AMX_ADDR) + tuple(
    "127.0.0.%d" % (20 + i) for i in range(len(PEER_DOMAINS)))

NXDOMAIN_ZONES = ["nosuch.test"]
SERVFAIL_ZONES = ["broken.test"]

# Low client timeouts so a hung peer costs seconds, not minutes. (Names as
# in Postfix; an unknown name is only a warning in `mailctl check`.)
SMTP_TIMEOUTS = {
    "smtp_connect_timeout": "3s",
    "smtp_helo_timeout": "3s",
    "smtp_mail_timeout": "3s",
    "smtp_rcpt_timeout": "3s",
    "smtp_data_init_timeout": "3s",
    "smtp_data_xfer_timeout": "3s",
    "smtp_data_done_timeout": "3s",
    "smtp_quit_timeout": "3s",
    "smtp_starttls_timeout": "3s",
}


def _free_offset():
    """A port offset N free for every sandbox service on both sandbox
    addresses and for N + 25 on every peer address."""
    for _ in range(200):
        n = harness.free_port_offset(A_ADDR)
        if all(harness._port_free(B_ADDR, n + p) for p in harness.STANDARD_PORTS.values()) and \
                all(harness._port_free(a, n + 25) for a in PEER_ADDRS):
            return n
    raise RuntimeError("no free port offset for the outbound tests")


def token():
    return "T" + uuid.uuid4().hex[:16]


def message(sender, rcpts, tok, body="hello from the outbound tests\n", headers=""):
    return ("From: <%s>\r\nTo: %s\r\nSubject: outbound %s\r\nMessage-ID: <%s@a.test>\r\n%s\r\n%s"
            % (sender, ", ".join("<%s>" % r for r in rcpts), tok, tok,
               headers.replace("\n", "\r\n"), body.replace("\n", "\r\n"))).encode()


def pop3_fetch_all(box, user, password):
    """Every message in user's mailbox on box, read over POP3 (poplib)."""
    p = poplib.POP3(box.host, box.port("pop3"), timeout=10)
    try:
        p.user(user)
        p.pass_(password)
        count, _ = p.stat()
        return [b"\r\n".join(p.retr(i)[1]) for i in range(1, count + 1)]
    finally:
        p.quit()


def pop3_wait_for(box, user, password, needle, timeout=30):
    """The first message of user containing needle, over POP3; None after timeout."""
    needle = needle.encode() if isinstance(needle, str) else needle
    deadline = time.time() + timeout
    while True:
        for m in pop3_fetch_all(box, user, password):
            if needle in m:
                return m
        if time.time() > deadline:
            return None
        time.sleep(0.2)


class OutboundTest(unittest.TestCase):
    """Two sandboxes, one DNS server and scripted peers, shared by all tests;
    every test uses its own token (Subject and Message-ID) to find its mail."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tegami-outbound-")
        cls.offset = _free_offset()
        cls.smtp_port = cls.offset + 25
        cls.boxes = []
        cls.dns = DnsServer(ZONES, nxdomain=NXDOMAIN_ZONES, servfail=SERVFAIL_ZONES).start()
        try:
            common = {"resolver_address": cls.dns.address, "smtp_port": str(cls.smtp_port)}
            common.update(SMTP_TIMEOUTS)
            cls.a = harness.Sandbox(domain="a.test", address=A_ADDR, port_offset=cls.offset,
                                    params=common)
            cls.boxes.append(cls.a)
            cls.b = harness.Sandbox(domain="b.test", address=B_ADDR, port_offset=cls.offset,
                                    params=dict(common, mydestination=(
                                        "$mydomain, $myhostname, localhost, backup.test")))
            cls.boxes.append(cls.b)
            # transport_maps on a.test: one explicit [host]:port route, one error route.
            cls.transport_peer_port = cls.offset + 26
            table = os.path.join(cls.a.dir, "transport")
            with open(table, "w") as f:
                f.write("routed.test smtp:[%s]:%d\n" % (TRANSPORT_ADDR, cls.transport_peer_port))
                f.write("forbidden.test error:5.7.1 no mail to forbidden.test from here\n")
            cls.a.mailctl("map", "build", table, check=True)
            cls.a.set_param("transport_maps", "hash:" + table)
            # TLS policy: two destinations where TLS is mandatory
            policy = os.path.join(cls.a.dir, "tls_policy")
            with open(policy, "w") as f:
                f.write("plainenc.test encrypt\ntlsenc.test encrypt\n")
            cls.a.mailctl("map", "build", policy, check=True)
            cls.a.set_param("smtp_tls_policy_maps", "hash:" + policy)
            cls.a.set_param("smtp_destination_concurrency_limit", str(CONCURRENCY_LIMIT))
            cls.a.user_add("alice", PASSWORD)
            cls.b.user_add("bob", PASSWORD)
            cls.a.start()
            cls.b.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for box in getattr(cls, "boxes", []):
            box.close()
        cls.dns.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.peers = []
        self.expect_kill = self._testMethodName.endswith("_killed_mid_delivery_loses_nothing")
        self.log_start = {box.domain: len(box.log()) for box in self.boxes}

    def tearDown(self):
        for p in self.peers:
            p.stop()
        # whatever a peer sent, no tegami process may crash over it
        for box in self.boxes:
            crashes = [line for line in box.log()[self.log_start[box.domain]:].splitlines()
                       if re.search(r"killed by signal|exit status [1-9]|panic|fatal:", line)
                       and not (self.expect_kill and "killed by signal 9" in line)]
            self.assertEqual(crashes, [], "a process of %s died" % box.domain)

    # --- helpers ----------------------------------------------------------
    def peer(self, addr, **kw):
        p = SmtpPeer(host=addr, port=kw.pop("port", self.smtp_port), **kw).start()
        self.peers.append(p)
        return p

    def submit(self, rcpts, sender="alice@a.test", box=None, body="hello\n", options=(),
               headers=""):
        """Send one message into box's smtpd (port 25, from loopback, which
        is in mynetworks); return its token. The queue ID smtpd gave it is
        in self.last_qid."""
        box = box or self.a
        tok = token()
        with smtplib.SMTP(box.host, box.port("smtp"), timeout=30) as s:
            s.ehlo("client.test")
            code, text = s.mail(sender, list(options))
            self.assertEqual(code, 250, text)
            for r in rcpts:
                code, text = s.rcpt(r)
                self.assertEqual(code, 250, (r, text))
            code, text = s.data(message(sender, rcpts, tok, body, headers))
            self.assertEqual(code, 250, text)
        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
        self.assertIsNotNone(m, text)
        self.last_qid = m.group(1).decode()
        return tok

    def wait_log(self, box, pattern, timeout=30):
        """The first maillog line matching regex pattern; fails after timeout."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            for line in box.log().splitlines():
                if rx.search(line):
                    return line
            if time.time() > deadline:
                self.fail("no log line matching %r in %s's maillog; tail:\n%s" %
                          (pattern, box.domain, "\n".join(box.log().splitlines()[-40:])))
            time.sleep(0.1)

    def wait_dsn(self, tok, timeout=40):
        """The bounce alice gets about the message with this token (Maildir)."""
        paths = self.a.find_messages("alice", tok, timeout=timeout)
        self.assertTrue(paths, "no DSN for %s reached alice@a.test; log tail:\n%s" %
                        (tok, "\n".join(self.a.log().splitlines()[-40:])))
        with open(paths[0], "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_deferred(self, qid, rcpt, timeout=30):
        """Wait for qmgr's status=deferred line about rcpt of qid; check the
        message is in deferred/ and return the log line."""
        line = self.wait_log(self.a, r"%s: to=<%s>.*status=deferred" % (qid, re.escape(rcpt)),
                             timeout)
        deadline = time.time() + 10
        while time.time() < deadline:
            if any(os.path.basename(p) == qid for p in self.a.queue_files("deferred")):
                return line
            time.sleep(0.05)
        self.fail("%s is not in deferred/: %r" % (qid, self.a.queue_files()))

    def queue_entry(self, box, rcpt):
        for entry in box.queue_json():
            text = repr(entry)
            if rcpt in text:
                return entry
        return None

    # --- tests ------------------------------------------------------------
    def test_user_of_a_mails_user_of_b_who_reads_it_over_pop3(self):
        tok = self.submit(["bob@b.test"])
        got = pop3_wait_for(self.b, "bob", PASSWORD, tok, timeout=30)
        self.assertIsNotNone(got, "bob@b.test did not get the message over POP3; a.test log:\n%s"
                             % "\n".join(self.a.log().splitlines()[-30:]))
        self.assertIn(b"Subject: outbound " + tok.encode(), got)
        self.assertIn(b"hello", got)
        # a.test's client delivered it to b.test's MX, found through DNS.
        line = self.wait_log(self.a, r"to=<bob@b\.test>.*status=sent")
        self.assertIn("mx.b.test[%s]" % B_ADDR, line)
        self.assertTrue(self.a.wait_queue_empty(timeout=10))
        self.assertEqual(self.queue_entry(self.a, "bob@b.test"), None)

    def test_sendmail_to_remote_user_is_delivered(self):
        tok = token()
        self.a.sendmail(["-f", "alice@a.test", "bob@b.test"],
                        message("alice@a.test", ["bob@b.test"], tok).replace(b"\r\n", b"\n"))
        self.assertTrue(self.b.find_messages("bob", tok, timeout=30),
                        "sendmail'd mail did not reach bob@b.test")

    def test_first_mx_down_second_mx_gets_it(self):
        tok = self.submit(["bob@backup.test"])
        self.assertTrue(self.b.find_messages("bob", tok, timeout=30),
                        "mail for backup.test did not reach its second MX (b.test); log:\n%s"
                        % "\n".join(self.a.log().splitlines()[-30:]))
        line = self.wait_log(self.a, r"to=<bob@backup\.test>.*status=sent")
        self.assertIn("mx.b.test[%s]" % B_ADDR, line)

    def test_peer_451_defers_then_flush_delivers(self):
        peer = self.peer(TEMPFAIL_ADDR, rcpt_reply=(451, "4.3.0 try again later"))
        tok = self.submit(["carol@tempfail.test"])
        qid = self.last_qid
        peer.wait_transactions(1, timeout=30)
        self.wait_log(self.a, r"%s: to=<carol@tempfail\.test>.*status=deferred" % qid)
        self.assertEqual(peer.transactions[0].rcpt_replies, [("carol@tempfail.test", 451)])
        # mailq shows it, with the remote reason. qmgr logs the deferral
        # before it renames the file into deferred/, and other tests' mail
        # may already be there: wait for this very file.
        def deferred_ids():
            return " ".join(os.path.basename(p) for p in self.a.queue_files("deferred"))
        deadline = time.time() + 15
        while time.time() < deadline and qid not in deferred_ids():
            time.sleep(0.1)
        self.assertIn(qid, deferred_ids())
        listing = self.a.mailctl("queue", "list", check=True).stdout
        self.assertIn(qid, listing)
        self.assertIn("carol@tempfail.test", listing)
        mailq = subprocess.run([harness.Sandbox.bin("mailq"), "-C", self.a.dir],
                               capture_output=True, text=True, timeout=30)
        self.assertIn(qid, mailq.stdout)
        self.assertIn("carol@tempfail.test", mailq.stdout)
        # ... with the remote server's reason, as Postfix's mailq shows it
        self.assertIn("451 4.3.0 try again later", mailq.stdout)
        entry = [e for e in self.a.queue_json() if e["queue_id"] == qid]
        self.assertEqual(len(entry), 1)
        self.assertEqual(entry[0]["queue"], "deferred")
        self.assertEqual([r["status"] for r in entry[0]["recipients"]], ["pending"])
        # the peer recovers; flush sends it now, not after the backoff
        peer.rcpt_reply = (250, "2.1.5 ok")
        self.a.mailctl("flush", check=True)
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertIn(tok.encode(), done[0].data)
        self.assertEqual(done[0].mail_from, "alice@a.test")
        self.assertEqual(done[0].rcpts, ["carol@tempfail.test"])
        self.wait_log(self.a, r"%s: to=<carol@tempfail\.test>.*status=sent" % qid)
        self.assertNotIn(qid, self.a.mailctl("queue", "list", check=True).stdout)

    def test_peer_550_bounces_to_sender_with_dsn_naming_recipient_and_reason(self):
        peer = self.peer(REJECT_ADDR, rcpt_reply={
            "nobody@reject.test": (550, "5.1.1 <nobody@reject.test>: user unknown here"),
            None: (250, "2.1.5 ok")})
        tok = self.submit(["nobody@reject.test", "someone@reject.test"])
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertEqual(done[0].rcpts, ["someone@reject.test"])
        self.assertIn(tok.encode(), done[0].data)
        dsn = self.wait_dsn(tok)
        self.assertIn("nobody@reject.test", dsn)
        self.assertIn("user unknown here", dsn)
        self.assertRegex(dsn, r"Status:\s*5\.1\.1")
        self.assertRegex(dsn, r"Action:\s*failed")
        self.assertNotRegex(dsn, r"Final-Recipient:[^\n]*someone@reject\.test")
        # alice reads the same DSN over POP3
        got = pop3_wait_for(self.a, "alice", PASSWORD, tok, timeout=10)
        self.assertIsNotNone(got)
        self.assertIn(b"nobody@reject.test", got)

    def test_null_mx_bounces_with_5_1_10(self):
        tok = self.submit(["anyone@null.test"])
        dsn = self.wait_dsn(tok)
        self.assertIn("anyone@null.test", dsn)
        self.assertRegex(dsn, r"Status:\s*5\.1\.10")
        self.wait_log(self.a, r"to=<anyone@null\.test>.*dsn=5\.1\.10.*status=bounced")

    def test_mx_pointing_back_at_self_bounces_as_mail_loop(self):
        tok = self.submit(["someone@loop.test"])
        dsn = self.wait_dsn(tok, timeout=60)
        self.assertIn("someone@loop.test", dsn)
        self.assertRegex(dsn, r"Status:\s*5\.\d+\.\d+")
        self.assertRegex(dsn.lower(), r"loop")
        self.wait_log(self.a, r"to=<someone@loop\.test>.*status=bounced.*loop")

    def test_starttls_is_used_when_the_peer_offers_it(self):
        cert, key = make_cert(self.tmp, "mx.tls.test")
        peer = self.peer(TLS_ADDR, starttls=True, certfile=cert, keyfile=key)
        tok = self.submit(["tina@tls.test"])
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertTrue(done[0].tls, "the message was sent without STARTTLS")
        self.assertIn(tok.encode(), done[0].data)
        conn = done[0].connection
        self.assertIn("STARTTLS", [c.upper() for c in conn.commands])
        # EHLO is repeated after the handshake (RFC 3207 §4.2)
        self.assertEqual([c.split()[0].upper() for c in conn.commands[:3]],
                         ["EHLO", "STARTTLS", "EHLO"])
        self.assertTrue(conn.tls_version.startswith("TLS"))
        self.wait_log(self.a, r"(?i)tls.*mx\.tls\.test|mx\.tls\.test.*tls")

    def test_starttls_is_used_between_two_tegami_instances(self):
        tok = self.submit(["bob@b.test"])
        paths = self.b.find_messages("bob", tok, timeout=30)
        self.assertTrue(paths)
        with open(paths[0], "rb") as f:
            head = f.read().split(b"\n\n", 1)[0]
        # b.test's smtpd writes "with ESMTPS" in Received: for a TLS session
        self.assertRegex(head, rb"with (ESMTPS|UTF8SMTPS)")

    def test_hanging_domain_does_not_hold_up_another_domain(self):
        hang = self.peer(HANG_ADDR, hang="greeting")
        self.submit(["stuck@hang.test"])
        hang.wait_connections(1, timeout=30)
        t0 = time.time()
        tok = self.submit(["bob@b.test"])
        self.assertTrue(self.b.find_messages("bob", tok, timeout=5),
                        "mail to b.test waited behind the hanging hang.test")
        self.assertLess(time.time() - t0, 5.5)
        # the hung session times out (smtp_helo_timeout = 3s) and the mail is deferred
        self.wait_log(self.a, r"to=<stuck@hang\.test>.*status=deferred", timeout=30)

    def test_transport_maps_route_to_bracketed_host_and_port(self):
        peer = self.peer(TRANSPORT_ADDR, port=self.transport_peer_port)
        tok = self.submit(["rita@routed.test"])
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertEqual(done[0].rcpts, ["rita@routed.test"])
        self.assertIn(tok.encode(), done[0].data)

    def test_transport_maps_error_bounces_with_its_text(self):
        tok = self.submit(["x@forbidden.test"])
        dsn = self.wait_dsn(tok)
        self.assertIn("x@forbidden.test", dsn)
        self.assertRegex(dsn, r"Status:\s*5\.7\.1")
        self.assertIn("no mail to forbidden.test from here", dsn)

    # --- content, grouping, per-recipient results ---------------------------
    def test_message_arrives_intact_with_dot_stuffing_and_crlf(self):
        peer = self.peer(peer_addr("content"))
        body = ("first line\n.leading dot\n..two dots\n.\n. dot space\n"
                "trailing spaces   \n" + "x" * 990 + "\n\nlast line\n")
        tok = self.submit(["carl@content.test"], body=body)
        t = peer.wait_transactions(1, timeout=30, delivered=True)[0]
        self.assertEqual(t.mail_from, "alice@a.test")
        self.assertEqual(t.rcpts, ["carl@content.test"])
        self.assertEqual(t.helo, "mail.a.test")  # smtp_helo_name = $myhostname
        head, _, got_body = t.data.partition(b"\r\n\r\n")
        self.assertEqual(got_body, body.replace("\n", "\r\n").encode())
        self.assertIn(b"Subject: outbound " + tok.encode(), head)
        self.assertNotIn(b"\n", t.data.replace(b"\r\n", b""), "bare LF on the wire")
        self.assertRegex(head, rb"(?m)^Received: ")

    def test_several_recipients_of_one_domain_go_in_one_transaction(self):
        peer = self.peer(peer_addr("multi"))
        rcpts = ["m1@multi.test", "m2@multi.test", "m3@multi.test"]
        tok = self.submit(rcpts)
        t = peer.wait_transactions(1, timeout=30, delivered=True)[0]
        self.assertEqual(sorted(t.rcpts), rcpts)
        self.assertIn(tok.encode(), t.data)
        time.sleep(1)
        self.assertEqual(len(peer.delivered()), 1, "the message was sent more than once")

    def test_mixed_451_and_250_retries_only_the_deferred_recipient(self):
        peer = self.peer(peer_addr("mixed"), rcpt_reply={
            "later@mixed.test": (451, "4.2.1 mailbox busy"), None: (250, "2.1.5 ok")})
        tok = self.submit(["now@mixed.test", "later@mixed.test"])
        qid = self.last_qid
        first = peer.wait_transactions(1, timeout=30, delivered=True)[0]
        self.assertEqual(first.rcpts, ["now@mixed.test"])
        self.wait_deferred(qid, "later@mixed.test")
        entry = [e for e in self.a.queue_json() if e["queue_id"] == qid][0]
        self.assertEqual({r["address"]: r["status"] for r in entry["recipients"]}.get(
            "later@mixed.test"), "pending")
        self.assertNotIn("now@mixed.test", [r["address"] for r in entry["recipients"]
                                            if r["status"] == "pending"])
        peer.rcpt_reply = (250, "2.1.5 ok")
        self.a.mailctl("flush", check=True)
        second = peer.wait_transactions(2, timeout=30, delivered=True)[1]
        self.assertEqual(second.rcpts, ["later@mixed.test"])
        self.assertIn(tok.encode(), second.data)
        self.wait_log(self.a, r"%s: removed" % qid)

    def test_data_rejected_with_554_bounces_every_recipient(self):
        self.peer(peer_addr("datarej"), data_reply=(554, "5.6.0 content rejected by policy"))
        tok = self.submit(["d1@datarej.test", "d2@datarej.test"])
        dsn = self.wait_dsn(tok)
        self.assertIn("d1@datarej.test", dsn)
        self.assertIn("d2@datarej.test", dsn)
        self.assertIn("content rejected by policy", dsn)
        self.assertEqual(len(re.findall(r"Status:\s*5\.6\.0", dsn)), 2, dsn)

    def test_lost_reply_to_final_dot_defers_and_the_retry_delivers(self):
        peer = self.peer(peer_addr("dropdata"), data_reply=SmtpPeer.DROP)
        tok = self.submit(["lost@dropdata.test"])
        qid = self.last_qid
        peer.wait_transactions(1, timeout=30)
        line = self.wait_deferred(qid, "lost@dropdata.test")
        self.assertRegex(line, r"dsn=4\.\d+\.\d+")
        # the peer got the data but never said 250: it must be sent again
        peer.data_reply = (250, "2.0.0 ok this time")
        self.a.mailctl("flush", check=True)
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertIn(tok.encode(), done[0].data)
        self.wait_log(self.a, r"%s: to=<lost@dropdata\.test>.*status=sent" % qid)

    def test_connection_dropped_after_rcpt_defers(self):
        self.peer(peer_addr("quitdrop"), rcpt_reply=SmtpPeer.DROP)
        self.submit(["gone@quitdrop.test"])
        line = self.wait_deferred(self.last_qid, "gone@quitdrop.test")
        self.assertRegex(line, r"dsn=4\.\d+\.\d+")

    def test_pipelined_replies_are_matched_to_their_recipients(self):
        peer = self.peer(peer_addr("pipe"), pipelining=True, rcpt_reply={
            "no@pipe.test": (550, "5.1.1 no such user"),
            "wait@pipe.test": (450, "4.2.0 greylisted"),
            None: (250, "2.1.5 ok")},
            data_reply=(250, "2.0.0 accepted\nas several\nlines"))
        rcpts = ["y1@pipe.test", "no@pipe.test", "wait@pipe.test", "y2@pipe.test"]
        tok = self.submit(rcpts)
        qid = self.last_qid
        t = peer.wait_transactions(1, timeout=30, delivered=True)[0]
        self.assertEqual(t.rcpts, ["y1@pipe.test", "y2@pipe.test"])
        self.assertEqual(sorted(r for r, _ in t.rcpt_replies), sorted(rcpts))
        for r in ("y1@pipe.test", "y2@pipe.test"):
            self.wait_log(self.a, r"%s: to=<%s>.*status=sent" % (qid, re.escape(r)))
        self.wait_log(self.a, r"%s: to=<no@pipe\.test>.*dsn=5\.1\.1.*status=bounced" % qid)
        self.wait_log(self.a, r"%s: to=<wait@pipe\.test>.*dsn=4\.2\.0.*status=deferred" % qid)
        dsn = self.wait_dsn(tok)
        self.assertIn("no@pipe.test", dsn)
        self.assertNotRegex(dsn, r"Final-Recipient:[^\n]*(y1|y2|wait)@pipe\.test")
        # the commands really were pipelined: all RCPTs were in one write, so
        # the peer read them back to back (order preserved)
        cmds = [c.split()[0].upper() for c in t.connection.commands]
        self.assertEqual(cmds[cmds.index("MAIL"):cmds.index("MAIL") + 6],
                         ["MAIL", "RCPT", "RCPT", "RCPT", "RCPT", "DATA"])

    def test_server_without_ehlo_gets_helo(self):
        peer = self.peer(peer_addr("heloonly"), ehlo_reply=(502, "5.5.1 EHLO not implemented"))
        tok = self.submit(["h@heloonly.test"])
        t = peer.wait_transactions(1, timeout=30, delivered=True)[0]
        self.assertIn(tok.encode(), t.data)
        cmds = [c.split()[0].upper() for c in t.connection.commands]
        self.assertEqual(cmds[:2], ["EHLO", "HELO"])

    # --- broken peers: a clear error and a log line, no crash, no loss ------
    def test_garbage_greeting_defers_with_a_log_line(self):
        self.peer(peer_addr("garbage"), greeting=b"hello, this is not SMTP\r\n")
        self.submit(["g@garbage.test"])
        line = self.wait_deferred(self.last_qid, "g@garbage.test")
        self.assertRegex(line, r"dsn=4\.\d+\.\d+")
        self.assertIn("mx.garbage.test", line)
        # the smtp client still works for everyone else
        tok = self.submit(["bob@b.test"])
        self.assertTrue(self.b.find_messages("bob", tok, timeout=20))

    def test_421_greeting_defers(self):
        self.peer(peer_addr("greet421"), greeting=(421, "4.3.2 too busy, come back later"))
        self.submit(["x@greet421.test"])
        line = self.wait_deferred(self.last_qid, "x@greet421.test")
        self.assertIn("too busy", line)

    def test_overlong_reply_line_is_cut_and_delivery_goes_on(self):
        # RFC 5321 §4.5.3.1.5 allows 512 octets; a longer line is read up to
        # the client's bound and the rest skipped, as Postfix does.
        huge = b"250-mx.bigreply.test " + b"x" * 200000 + b"\r\n250 8BITMIME\r\n"
        peer = self.peer(peer_addr("bigreply"), ehlo_reply=huge)
        tok = self.submit(["big@bigreply.test"])
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertIn(tok.encode(), done[0].data)
        line = self.wait_log(self.a, r"%s: to=<big@bigreply\.test>.*status=sent" % self.last_qid)
        self.assertLess(len(line), 4000)

    def test_reply_with_too_many_lines_defers_as_malformed(self):
        endless = b"".join(b"250-line %d\r\n" % i for i in range(5000)) + b"250 ok\r\n"
        self.peer(peer_addr("manylines"), ehlo_reply=endless)
        self.submit(["m@manylines.test"])
        line = self.wait_deferred(self.last_qid, "m@manylines.test")
        self.assertRegex(line, r"dsn=4\.\d+\.\d+")
        self.assertIn("malformed", line)
        self.assertLess(len(line), 4000)

    def test_peer_silent_after_data_times_out_and_mail_stays_queued(self):
        peer = self.peer(peer_addr("hangdata"), hang="data")
        tok = self.submit(["slow@hangdata.test"])
        qid = self.last_qid
        peer.wait_transactions(1, timeout=30)
        self.wait_deferred(qid, "slow@hangdata.test", timeout=30)  # smtp_data_done_timeout = 3s
        peer.hang = None
        self.a.mailctl("flush", check=True)
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertIn(tok.encode(), done[0].data)

    def test_smtp_process_killed_mid_delivery_loses_nothing(self):
        peer = self.peer(peer_addr("kill9"), hang="data")
        tok = self.submit(["k@kill9.test"])
        qid = self.last_qid
        peer.wait_transactions(1, timeout=30)  # the message is on the wire, no reply yet
        pids = self.a.service_pids("smtp")
        self.assertTrue(pids, self.a.status())
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.wait_deferred(qid, "k@kill9.test")
        entry = [e for e in self.a.queue_json() if e["queue_id"] == qid]
        self.assertEqual([r["status"] for r in entry[0]["recipients"]], ["pending"])
        # qmgr now skips kill9.test for minimal_backoff_time (it counts a lost
        # agent as a dead destination, as Postfix throttles the transport);
        # a restart forgets that, and the queue is the truth: flush sends it.
        peer.hang = None
        self.a.stop()
        self.a.start()
        self.a.mailctl("flush", check=True)
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertIn(tok.encode(), done[0].data)
        self.wait_log(self.a, r"%s: removed" % qid)

    # --- DNS ------------------------------------------------------------------
    def test_domain_without_mx_is_delivered_to_its_address_record(self):
        peer = self.peer(AMX_ADDR)
        tok = self.submit(["ann@amx.test"])
        done = peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertIn(tok.encode(), done[0].data)

    def test_nonexistent_domain_bounces(self):
        tok = self.submit(["who@nosuch.test"])
        dsn = self.wait_dsn(tok)
        self.assertIn("who@nosuch.test", dsn)
        self.assertRegex(dsn, r"Status:\s*5\.\d+\.\d+")

    def test_dns_failure_defers(self):
        self.submit(["x@broken.test"])
        line = self.wait_deferred(self.last_qid, "x@broken.test")
        self.assertRegex(line, r"dsn=4\.\d+\.\d+")

    # --- scheduling -----------------------------------------------------------
    def test_per_destination_concurrency_limit_is_respected(self):
        lock = threading.Lock()
        state = {"now": 0, "max": 0}

        def slow_accept(tx):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            time.sleep(0.4)
            with lock:
                state["now"] -= 1
            return (250, "2.0.0 ok")

        peer = self.peer(peer_addr("conc"), data_reply=slow_accept)
        n = 15
        toks = [self.submit(["c%d@conc.test" % i]) for i in range(n)]
        done = peer.wait_transactions(n, timeout=60, delivered=True)
        got = b"".join(t.data for t in done)
        for tok in toks:
            self.assertIn(tok.encode(), got)
        self.assertLessEqual(state["max"], CONCURRENCY_LIMIT)
        self.assertGreaterEqual(state["max"], 2, "deliveries to one destination never ran "
                                                 "in parallel")

    # --- bounces to remote senders, ESMTP limits, TLS policy ---------------------
    def test_bounce_to_remote_sender_goes_out_with_null_sender(self):
        self.peer(REJECT_ADDR, rcpt_reply=(550, "5.1.1 no such mailbox"))
        home = self.peer(peer_addr("nsb"))
        tok = self.submit(["nobody@reject.test"], sender="owner@nsb.test")
        t = home.wait_transactions(1, timeout=40, delivered=True)[0]
        self.assertEqual(t.mail_from, "", "a bounce must have the null sender (RFC 5321 §4.5.5)")
        self.assertEqual(t.rcpts, ["owner@nsb.test"])
        self.assertIn(b"nobody@reject.test", t.data)
        self.assertIn(tok.encode(), t.data)
        self.assertIn(b"multipart/report", t.data)

    def test_8bit_message_to_peer_without_8bitmime_is_sent_as_7bit(self):
        peer = self.peer(peer_addr("seven"), ehlo_reply=(250, "mx.seven.test\nSIZE 10000000"))
        body = "Gr\u00fc\u00dfe aus Tokyo: \u624b\u7d19\n"
        tok = self.submit(["s@seven.test"], options=["BODY=8BITMIME"], body=body,
                          headers="MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                                  "Content-Transfer-Encoding: 8bit\n")
        t = peer.wait_transactions(1, timeout=30)[0]
        self.assertNotIn("BODY=8BITMIME", t.mail_params.upper())
        peer.wait_transactions(1, timeout=30, delivered=True)
        self.assertTrue(all(b < 0x80 for b in t.data), "8-bit data sent to a 7-bit server")
        self.assertIn(tok.encode(), t.data)
        self.assertRegex(t.data, rb"(?i)Content-Transfer-Encoding: *(quoted-printable|base64)")

    def test_message_over_the_peers_size_limit_bounces_without_data(self):
        peer = self.peer(peer_addr("small"), ehlo_reply=(250, "mx.small.test\nSIZE 2000\n8BITMIME"))
        tok = self.submit(["s@small.test"], body=("y" * 70 + "\n") * 150)
        dsn = self.wait_dsn(tok)
        self.assertIn("s@small.test", dsn)
        self.assertRegex(dsn, r"Status:\s*5\.3\.4")
        self.assertEqual([t for t in peer.transactions if t.data is not None], [])

    def test_tls_policy_encrypt_never_sends_mail_in_the_clear(self):
        peer = self.peer(peer_addr("plainenc"))  # no STARTTLS offered
        self.submit(["p@plainenc.test"])
        line = self.wait_deferred(self.last_qid, "p@plainenc.test")
        self.assertRegex(line, r"dsn=4\.\d+\.\d+")
        self.assertRegex(line, r"(?i)tls")
        self.assertEqual(peer.transactions, [], "MAIL FROM was sent without TLS")

    def test_tls_policy_encrypt_delivers_over_tls(self):
        cert, key = make_cert(self.tmp, "mx.tlsenc.test")
        peer = self.peer(peer_addr("tlsenc"), starttls=True, certfile=cert, keyfile=key)
        tok = self.submit(["e@tlsenc.test"])
        t = peer.wait_transactions(1, timeout=30, delivered=True)[0]
        self.assertTrue(t.tls)
        self.assertIn(tok.encode(), t.data)


class RelayhostTest(unittest.TestCase):
    """relayhost = [host]:port sends all non-local mail there, with no MX
    lookup (the DNS fixture knows none of these names); local mail stays."""

    @classmethod
    def setUpClass(cls):
        cls.offset = _free_offset()
        cls.relay = SmtpPeer(host=TRANSPORT_ADDR, port=cls.offset + 587).start()
        try:
            cls.box = harness.Sandbox(domain="a.test", address=A_ADDR, port_offset=cls.offset,
                                      params={"relayhost": "[%s]:%d" % (TRANSPORT_ADDR,
                                                                        cls.offset + 587),
                                              "resolver_address": "127.0.0.1@9"})
            cls.box.user_add("alice", PASSWORD)
            cls.box.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "box", None):
            cls.box.close()
        cls.relay.stop()

    def test_remote_mail_goes_to_the_relayhost_and_local_mail_stays_local(self):
        tok = token()
        with smtplib.SMTP(self.box.host, self.box.port("smtp"), timeout=30) as s:
            s.sendmail("alice@a.test", ["x@far.test", "y@elsewhere.test", "alice@a.test"],
                       message("alice@a.test", ["x@far.test"], tok))
        got = self.relay.wait_transactions(1, timeout=30, delivered=True)
        rcpts = sorted(r for t in got for r in t.rcpts)
        if len(rcpts) < 2:
            got = self.relay.wait_transactions(2, timeout=30, delivered=True)
            rcpts = sorted(r for t in got for r in t.rcpts)
        self.assertEqual(rcpts, ["x@far.test", "y@elsewhere.test"])
        self.assertIn(tok.encode(), got[0].data)
        self.assertTrue(self.box.find_messages("alice", tok, timeout=20))
        self.assertNotIn("alice@a.test", rcpts)


if __name__ == "__main__":
    unittest.main()
