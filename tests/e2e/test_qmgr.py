"""End-to-end tests of the queue manager: bounces (RFC 3464 DSNs) for
unknown local users, no bounce of a bounce, deferral of remote mail while no
smtp transport exists, flush, and crash safety when qmgr is killed."""

import email
import os
import re
import signal
import smtplib
import time
import unittest
import uuid

from harness import Sandbox

ALIASES = """\
# test aliases for test_qmgr.py
ghost: nobody-here
"""


class QmgrTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Remote mail must wait in deferred/ here (no outbound peer in this test):
        # route it to a transport that defers (qmgr/resolve.c, "error:" with a 4.X.X code).
        cls.sb = Sandbox(params={"default_transport": "error:4.4.1 no outbound mail in this test"})
        for user in ("alice", "bob", "carol"):
            cls.sb.user_add(user, "pw-" + user)
        cls.sb.write_aliases(ALIASES)
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # --- helpers ----------------------------------------------------------
    def send(self, sender, rcpts, subject, body="hello\n"):
        """Send one message over SMTP; returns its queue ID."""
        d = self.sb.domain
        data = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@%s>\r\n\r\n%s" %
                (sender or "MAILER-DAEMON@" + d, ", ".join(rcpts), subject,
                 uuid.uuid4().hex, d, body.replace("\n", "\r\n"))).encode()
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.ehlo("client.example.test")
            code, msg = s.mail(sender)
            self.assertEqual(code, 250, msg)
            for r in rcpts:
                code, msg = s.rcpt(r)
                self.assertEqual(code, 250, msg)
            code, msg = s.data(data)
            self.assertEqual(code, 250, msg)
        m = re.search(rb"queued as ([0-9A-V]+)", msg)
        self.assertIsNotNone(m, msg)
        return m.group(1).decode()

    def find(self, user, needle, timeout=30):
        return self.sb.find_messages(user, needle, timeout)

    def qmgr_pid(self):
        pids = self.sb.service_pids("qmgr")
        return pids[0] if pids else None

    # --- bounces ------------------------------------------------------------
    def test_unknown_user_via_alias_bounces_dsn_to_sender(self):
        d = self.sb.domain
        subject = "bounce-me-" + uuid.uuid4().hex
        qid = self.send("alice@" + d, ["ghost@" + d], subject)
        paths = self.find("alice", subject)
        self.assertEqual(len(paths), 1, "alice got no DSN; log:\n" + self.sb.log()[-3000:])
        with open(paths[0], "rb") as f:
            msg = email.message_from_bytes(f.read())
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual(msg["Subject"], "Undelivered Mail Returned to Sender")
        self.assertEqual(msg["Auto-Submitted"], "auto-replied")
        self.assertTrue(msg["From"].startswith("MAILER-DAEMON@"))
        parts = msg.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        self.assertIn("ghost@" + d, parts[0].get_payload())
        blocks = parts[1].get_payload()
        self.assertIn("dns;", blocks[0]["Reporting-MTA"])
        rcpt = blocks[1]
        self.assertEqual(rcpt["Final-Recipient"], "rfc822; ghost@" + d)
        self.assertEqual(rcpt["Action"], "failed")
        self.assertTrue(rcpt["Status"].startswith("5."), rcpt["Status"])
        self.assertTrue(rcpt["Diagnostic-Code"], "no reason given")
        self.assertIn(subject, parts[2].get_payload())
        # The DSN itself carries the null sender and the original is gone.
        with open(paths[0], "rb") as f:
            self.assertTrue(f.read().startswith(b"Return-Path: <>"))
        self.sb.expect_log(qid + r": removed")

    def test_unknown_user_via_sendmail_bounces_dsn_to_sender(self):
        d = self.sb.domain
        subject = "sendmail-bounce-" + uuid.uuid4().hex
        self.sb.sendmail(["-f", "bob@" + d, "nosuch@" + d],
                         "From: bob@%s\nSubject: %s\n\nhi\n" % (d, subject))
        paths = self.find("bob", subject, timeout=45)
        self.assertEqual(len(paths), 1, "bob got no DSN; log:\n" + self.sb.log()[-3000:])
        with open(paths[0], "rb") as f:
            text = f.read().decode(errors="replace")
        self.assertIn("Final-Recipient: rfc822; nosuch@" + d, text)
        self.assertIn("Status: 5.1.1", text)

    def test_null_sender_to_unknown_user_produces_no_bounce(self):
        d = self.sb.domain
        subject = "no-double-bounce-" + uuid.uuid4().hex
        before = len(self.sb.messages("alice"))
        qid = self.send("", ["ghost@" + d], subject)
        self.sb.expect_log(qid + r": removed")
        self.sb.expect_log_text(qid + ": sender=<>")
        self.assertNotIn(qid + ": sender non-delivery notification", self.sb.log())
        time.sleep(0.5)
        self.assertEqual(self.find("alice", subject, timeout=0), [])
        self.assertEqual(len(self.sb.messages("alice")), before)

    # --- remote mail waits ----------------------------------------------------
    def test_remote_recipient_from_mynetworks_waits_in_deferred(self):
        d = self.sb.domain
        qid = self.send("carol@" + d, ["someone@remote.test"], "remote-" + uuid.uuid4().hex)
        deferred = os.path.join(self.sb.dir, "queue", "deferred", qid)
        deadline = time.time() + 30
        while not os.path.exists(deferred) and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(deferred), self.sb.log()[-3000:])
        self.assertGreater(os.stat(deferred).st_mtime, time.time() + 60,
                           "retry time (mtime) should be minutes ahead")
        self.sb.expect_log_text(qid + ": to=<someone@remote.test>, relay=none")
        listing = self.sb.mailctl("queue", "list")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn(qid, listing.stdout)
        # A flush retries it now: it is activated again and deferred again.
        n = self.sb.log().count(qid + ": from=")
        self.sb.mailctl("flush", check=True)
        deadline = time.time() + 30
        while self.sb.log().count(qid + ": from=") <= n and time.time() < deadline:
            time.sleep(0.05)
        self.assertGreater(self.sb.log().count(qid + ": from="), n)
        self.sb.expect_log(qid)
        deadline = time.time() + 10
        while not os.path.exists(deferred) and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(deferred))

    def test_mixed_local_and_remote_delivers_local_part_now(self):
        d = self.sb.domain
        subject = "mixed-" + uuid.uuid4().hex
        qid = self.send("alice@" + d, ["bob@" + d, "far@remote.test"], subject)
        self.assertEqual(len(self.find("bob", subject)), 1)
        deferred = os.path.join(self.sb.dir, "queue", "deferred", qid)
        deadline = time.time() + 30
        while not os.path.exists(deferred) and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(deferred))
        # Retried later, bob must not get a second copy.
        self.sb.mailctl("flush", check=True)
        time.sleep(1.5)
        self.assertEqual(len(self.find("bob", subject, timeout=0)), 1)

    # --- crash safety ---------------------------------------------------------
    def test_messages_survive_kill_9_of_qmgr(self):
        d = self.sb.domain
        tag = "kill-" + uuid.uuid4().hex
        pid = self.qmgr_pid()
        self.assertIsNotNone(pid, self.sb.status())
        n = 40
        for i in range(n):
            self.send("alice@" + d, ["carol@" + d], "%s-%d" % (tag, i))
            if i in (10, 25):
                pid = self.qmgr_pid()
                if pid:
                    os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 60
        while time.time() < deadline:
            got = set()
            for p in self.find("carol", tag, timeout=0):
                with open(p, "rb") as f:
                    m = re.search(rb"Subject: (" + tag.encode() + rb"-\d+)", f.read())
                    if m:
                        got.add(m.group(1))
            if len(got) == n:
                break
            time.sleep(0.2)
        self.assertEqual(len(got), n, "lost messages; log:\n" + self.sb.log()[-3000:])
        self.assertTrue(self.sb.wait_queue_empty(timeout=30))


if __name__ == "__main__":
    unittest.main()
