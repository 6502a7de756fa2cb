"""End-to-end tests of smtpd: a real sandbox, driven by smtplib, raw sockets
and swaks.

Accept-side behaviour (replies, queue files, logs) does not depend on
delivery; the tests that look at delivered mail wait with sb.wait_messages.
"""

import os
import re
import smtplib
import socket
import subprocess
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"
QUEUED_RE = re.compile(r"250 2\.0\.0 Ok: queued as ([0-9A-V]+)")
SMUGGLE_VARIANTS = {
    "lf_dot_lf": b"\n.\n",
    "lf_dot_crlf": b"\n.\r\n",
    "cr_dot_crlf": b"\r.\r\n",
    "crlf_dot_cr": b"\r\n.\r",
}


def parse_replies(data):
    """Split raw server output into replies: a list of (code, [lines])."""
    replies, cur = [], []
    for line in data.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        cur.append(line)
        if len(line) < 4 or line[3] == " ":
            replies.append((int(line[:3]), cur))
            cur = []
    if cur:
        replies.append((int(cur[0][:3]), cur))
    return replies


class SmtpdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(params={
            "smtpd_timeout": "2s",
            "smtpd_error_sleep_time": "0",
            "message_size_limit": "100000",
        })
        for user in ["alice", "bob", "carol"] + ["smug_" + v for v in SMUGGLE_VARIANTS]:
            cls.sb.user_add(user.replace("_", "-"), "pw")
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # --- helpers ---------------------------------------------------------
    def connect(self):
        return socket.create_connection((self.sb.host, self.sb.port("smtp")), timeout=10)

    def raw(self, data, wait=10.0):
        """Send data in ONE write, read until the server closes; return replies."""
        s = self.connect()
        try:
            s.settimeout(wait)
            s.sendall(data)
            out = b""
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                out += b
        finally:
            s.close()
        return parse_replies(out)

    def smtp(self):
        c = smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=10)
        c.ehlo("client.example")
        return c

    def files_with(self, marker):
        """Queue files and delivered files (all users) whose bytes contain marker.
        Mail moves while we look (incoming → active → Maildir, then the queue
        file is emptied): when a listed file vanished or was empty and nothing
        was found, the scan is repeated, so a message in motion is found where
        it went."""
        for _ in range(50):
            found, vanished = [], False
            paths = list(self.sb.queue_files())
            mail = os.path.join(self.sb.dir, "mail")
            for root, _, names in os.walk(mail):
                if os.path.basename(root) in ("new", "cur"):
                    paths += [os.path.join(root, n) for n in names]
            for p in paths:
                try:
                    with open(p, "rb") as f:
                        data = f.read()
                    if marker in data:
                        found.append(p)
                    elif not data:
                        vanished = True  # a delivered queue file, emptied for reuse
                except FileNotFoundError:
                    vanished = True
            if found or not vanished:
                return found
        return found

    def wait_stable_files(self, marker, timeout=30):
        """Files holding marker, once the set has stopped moving (delivery is async)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            cur = sorted(self.files_with(marker))
            if cur and cur == last and not any("/queue/incoming/" in p or "/queue/active/" in p
                                               for p in cur):
                return cur
            last = cur
            time.sleep(0.3)
        return sorted(self.files_with(marker))

    # --- greeting, EHLO, simple commands ----------------------------------
    def test_greeting_and_ehlo_advertise_extensions(self):
        c = smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=10)
        try:
            code, msg = c.ehlo("client.example")
            self.assertEqual(code, 250)
            self.assertEqual(c.esmtp_features.get("size"), "100000")
            for ext in ("pipelining", "8bitmime", "enhancedstatuscodes"):
                self.assertIn(ext, c.esmtp_features)
        finally:
            c.quit()
        replies = self.raw(b"QUIT\r\n")
        self.assertEqual(replies[0][1][0], "220 mail.%s ESMTP tegami" % DOMAIN)
        self.assertEqual(replies[1][1][0], "221 2.0.0 Bye")

    def test_vrfy_never_reveals_users(self):
        replies = self.raw(b"EHLO x\r\nVRFY alice\r\nVRFY nosuchuser\r\nQUIT\r\n")
        self.assertEqual([r[0] for r in replies], [220, 250, 252, 252, 221])
        self.assertEqual(replies[2][1], replies[3][1])
        self.assertTrue(replies[2][1][0].startswith("252 2.5.2 "))

    def test_sequence_syntax_and_unknown_command_errors(self):
        replies = self.raw(b"MAIL FROM:<a@b.example>\r\n"      # before EHLO
                           b"EHLO x\r\n"
                           b"RCPT TO:<alice@example.test>\r\n"  # before MAIL
                           b"DATA\r\n"                          # before MAIL
                           b"MAIL FROM:a@b.example\r\n"         # no brackets
                           b"MAIL FROM:<a@b.example> FOO=1\r\n"  # unknown parameter
                           b"XYZZY\r\n"
                           b"HELP\r\nNOOP\r\nRSET\r\nQUIT\r\n")
        lines = [r[1][-1] for r in replies]
        self.assertEqual([r[0] for r in replies],
                         [220, 503, 250, 503, 503, 501, 555, 502, 214, 250, 250, 221], lines)
        self.assertTrue(lines[1].startswith("503 5.5.1 "))
        self.assertTrue(lines[5].startswith("501 5.5.4 "))
        self.assertTrue(lines[7].startswith("502 5.5.2 "))

    # --- accepting mail -----------------------------------------------------
    def test_accepted_mail_gets_queue_id_and_queue_file(self):
        c = self.smtp()
        try:
            self.assertEqual(c.mail("sender@remote.example")[0], 250)
            self.assertEqual(c.rcpt("carol@%s" % DOMAIN)[0], 250)
            code, msg = c.data(b"Subject: accept\r\n\r\nhello accept-marker-1\r\n")
        finally:
            c.quit()
        self.assertEqual(code, 250)
        m = re.match(rb"2\.0\.0 Ok: queued as ([0-9A-V]+)$", msg)
        self.assertIsNotNone(m, msg)
        qid = m.group(1).decode()
        # The file was committed before the 250: it is in the queue or delivered.
        self.assertTrue(self.files_with(b"accept-marker-1"), "no queue file or delivered file")
        self.sb.expect_log_text("%s: client=unknown[127.0.0.1]" % qid)
        self.sb.expect_log(r"%s: from=<sender@remote\.example>, size=\d+, nrcpt=1" % qid)

    def test_delivered_message_has_received_header_and_unstuffed_dots(self):
        c = self.smtp()
        try:
            c.mail("sender@remote.example")
            c.rcpt("bob@%s" % DOMAIN)
            # smtplib dot-stuffs ".leading" into "..leading" on the wire.
            code, msg = c.data(b"Subject: received\r\n\r\n.leading dot\r\nbody\r\n")
        finally:
            c.quit()
        self.assertEqual(code, 250)
        qid = msg.decode().rsplit(" ", 1)[1]
        msgs = self.sb.wait_messages("bob", 1)
        self.assertEqual(len(msgs), 1, "message not delivered to bob")
        with open(msgs[0], "rb") as f:
            text = f.read().replace(b"\r\n", b"\n")
        self.assertRegex(text, rb"Received: from client\.example \(unknown \[127\.0\.0\.1\]\)\n"
                               rb"\tby mail\.example\.test \(tegami\) with ESMTP id " +
                         qid.encode() + rb"\n\tfor <bob@example\.test>; ")
        self.assertIn(b"\n.leading dot\n", text)

    def test_pipelined_session_in_one_write_gets_replies_in_order(self):
        replies = self.raw(b"EHLO pipe.example\r\n"
                           b"MAIL FROM:<p@remote.example>\r\n"
                           b"RCPT TO:<alice@example.test>\r\n"
                           b"RCPT TO:<nosuchuser@example.test>\r\n"
                           b"DATA\r\n"
                           b"Subject: pipelined\r\n\r\npipeline-marker\r\n.\r\n"
                           b"MAIL FROM:<p2@remote.example>\r\n"
                           b"RCPT TO:<carol@example.test>\r\n"
                           b"DATA\r\n"
                           b"Subject: pipelined 2\r\n\r\npipeline-marker-2\r\n.\r\n"
                           b"RSET\r\nNOOP\r\nQUIT\r\n")
        codes = [r[0] for r in replies]
        self.assertEqual(codes, [220, 250, 250, 250, 550, 354, 250, 250, 250, 354, 250,
                                 250, 250, 221], replies)
        self.assertRegex(replies[6][1][0], QUEUED_RE)
        self.assertRegex(replies[10][1][0], QUEUED_RE)
        self.assertNotEqual(replies[6][1][0], replies[10][1][0])

    def test_unknown_user_is_rejected_with_550(self):
        c = self.smtp()
        try:
            c.mail("sender@remote.example")
            code, msg = c.rcpt("nosuchuser@%s" % DOMAIN)
        finally:
            c.quit()
        self.assertEqual(code, 550)
        self.assertEqual(msg.decode(), "5.1.1 <nosuchuser@example.test>: Recipient address "
                                       "rejected: User unknown")
        self.sb.expect_log_text("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.1.1")

    def test_relay_denied_without_mynetworks_and_allowed_with_it(self):
        try:
            self.sb.set_param("mynetworks", "")
            self.sb.reload()
            c = self.smtp()
            try:
                c.mail("sender@remote.example")
                code, msg = c.rcpt("someone@remote.example")
            finally:
                c.quit()
            self.assertEqual(code, 554)
            self.assertEqual(msg.decode(), "5.7.1 <someone@remote.example>: Relay access denied")

            self.sb.set_param("mynetworks", "127.0.0.0/8")
            self.sb.reload()
            c = self.smtp()
            try:
                c.mail("sender@remote.example")
                code, msg = c.rcpt("someone@remote.example")
                self.assertEqual(code, 250, msg)
                # The mail then waits (no smtp client yet): only the 250 matters here.
                code, msg = c.data(b"Subject: relay\r\n\r\nrelayed\r\n")
                self.assertEqual(code, 250, msg)
            finally:
                c.quit()
        finally:
            self.sb.set_param("mynetworks", "127.0.0.0/8, [::1]/128")
            self.sb.reload()

    # --- limits -------------------------------------------------------------
    def test_declared_size_over_limit_is_552(self):
        c = self.smtp()
        try:
            code, msg = c.mail("sender@remote.example", ["SIZE=100001"])
            self.assertEqual(code, 552)
            self.assertTrue(msg.startswith(b"5.3.4 "), msg)
            self.assertEqual(c.mail("sender@remote.example", ["SIZE=1000"])[0], 250)
        finally:
            c.quit()

    def test_actual_size_over_limit_is_552_and_session_continues(self):
        body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 110 + b"big-marker\r\n"
        replies = self.raw(b"EHLO x\r\nMAIL FROM:<a@remote.example>\r\n"
                           b"RCPT TO:<alice@example.test>\r\nDATA\r\n" + body + b".\r\n"
                           b"NOOP\r\nQUIT\r\n")
        self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 354, 552, 250, 221])
        self.assertTrue(replies[5][1][0].startswith("552 5.3.4 "))
        time.sleep(0.5)
        self.assertEqual(self.files_with(b"big-marker"), [])

    def test_too_long_command_line_is_an_error(self):
        replies = self.raw(b"EHLO x\r\nNOOP " + b"a" * 5000 + b"\r\nNOOP\r\nQUIT\r\n")
        self.assertEqual([r[0] for r in replies], [220, 250, 500, 250, 221])
        self.assertEqual(replies[2][1][0], "500 5.5.2 Error: line too long")

    def test_too_many_errors_gives_421_and_disconnect(self):
        replies = self.raw(b"EHLO x\r\n" + b"BOGUS\r\n" * 30)
        codes = [r[0] for r in replies]
        self.assertEqual(codes, [220, 250] + [502] * 20 + [421])
        self.assertEqual(replies[-1][1][0], "421 4.7.0 Error: too many errors")

    def test_idle_client_gets_421_after_smtpd_timeout(self):
        s = self.connect()
        try:
            s.settimeout(10)
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220 "))
            s.sendall(b"EHLO idle.example\r\n")
            while True:
                line = f.readline()
                if line.startswith(b"250 "):
                    break
            start = time.time()
            line = f.readline()
            elapsed = time.time() - start
            self.assertTrue(line.startswith(b"421 4.4.2 "), line)
            self.assertGreater(elapsed, 1.0)
            self.assertLess(elapsed, 8.0)
            self.assertEqual(f.readline(), b"")  # disconnected
        finally:
            s.close()

    # --- SMTP smuggling (DESIGN invariant 4) --------------------------------
    def smuggle(self, name, seq):
        user = "smug-" + name.replace("_", "-")
        marker = ("smuggle-%s" % name).encode()
        payload = (b"EHLO smuggler.example\r\n"
                   b"MAIL FROM:<a@remote.example>\r\n"
                   b"RCPT TO:<" + user.encode() + b"@example.test>\r\n"
                   b"DATA\r\n"
                   b"Subject: first\r\n\r\n" + marker + b" first" + seq +
                   b"MAIL FROM:<evil@remote.example>\r\n"
                   b"RCPT TO:<" + user.encode() + b"@example.test>\r\n"
                   b"DATA\r\n"
                   b"Subject: smuggled\r\n\r\n" + marker + b" smuggled\r\n"
                   b".\r\n"
                   b"QUIT\r\n")
        replies = self.raw(payload)
        self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 354, 250, 221], replies)
        self.assertEqual(len([r for r in replies if QUEUED_RE.match(r[1][0])]), 1)
        files = self.wait_stable_files(marker)
        self.assertEqual(len(files), 1, files)
        with open(files[0], "rb") as f:
            data = f.read()
        # The smuggled "second message" is body text of the first one.
        self.assertIn(marker + b" first", data)
        self.assertIn(b"MAIL FROM:<evil@remote.example>", data)
        self.assertIn(marker + b" smuggled", data)
        self.assertEqual(len(self.sb.messages(user)), len([p for p in files if "/mail/" in p]))

    def test_smuggling_lf_dot_lf_stays_in_first_message(self):
        self.smuggle("lf_dot_lf", SMUGGLE_VARIANTS["lf_dot_lf"])

    def test_smuggling_lf_dot_crlf_stays_in_first_message(self):
        self.smuggle("lf_dot_crlf", SMUGGLE_VARIANTS["lf_dot_crlf"])

    def test_smuggling_cr_dot_crlf_stays_in_first_message(self):
        self.smuggle("cr_dot_crlf", SMUGGLE_VARIANTS["cr_dot_crlf"])

    def test_smuggling_crlf_dot_cr_stays_in_first_message(self):
        self.smuggle("crlf_dot_cr", SMUGGLE_VARIANTS["crlf_dot_cr"])

    # --- an independent client ----------------------------------------------
    def test_swaks_pipeline(self):
        p = subprocess.run(["swaks", "--server", "%s:%d" % (self.sb.host, self.sb.port("smtp")),
                            "--from", "swaks@remote.example", "--to", "alice@%s" % DOMAIN,
                            "--pipeline", "--header", "Subject: swaks",
                            "--body", "swaks-marker"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"250 2\.0\.0 Ok: queued as [0-9A-V]+")
        self.assertIn("PIPELINING", p.stdout)


if __name__ == "__main__":
    unittest.main()
