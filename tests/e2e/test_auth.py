"""End-to-end tests of SMTP AUTH (RFC 4954) and submission (RFC 6409):
AUTH only under TLS, 535 then 421 after the failure limit, sender
ownership, authenticated relay, Message-ID/Date and the SASL user in the
queue file. Clients: smtplib, raw sockets, swaks.
"""

import base64
import os
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # mynetworks empty: loopback is not trusted, so only AUTH permits relaying.
        # Relayed mail stays queued (deferred), so the tests can inspect it.
        cls.sb = Sandbox(domain=DOMAIN, params={"smtpd_auth_failure_delay": "0",
                                                "smtpd_auth_failure_limit": "3",
                                                "mynetworks": "",
                                                "default_transport":
                                                    "error:4.4.1 no outbound mail in this test"})
        for u in ("alice", "bob"):
            cls.sb.user_add(u, "pw-" + u)
        with open(os.path.join(cls.sb.dir, "sender_logins"), "w") as f:
            f.write("sales@%s alice, bob\n@shared.example alice\n" % DOMAIN)
        cls.sb.mailctl("map", "build", os.path.join(cls.sb.dir, "sender_logins"), check=True)
        cls.sb.set_param("smtpd_sender_login_maps",
                         "hash:" + os.path.join(cls.sb.dir, "sender_logins"))
        cls.sb.start()
        cls.cafile = os.path.join(cls.sb.dir, "tls", "cert.pem")

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def ctx(self):
        return ssl.create_default_context(cafile=self.cafile)

    def submission(self, login=None):
        c = smtplib.SMTP(self.sb.host, self.sb.port("submission"), timeout=30)
        c.starttls(context=self.ctx())
        c.ehlo("client.example")
        if login:
            c.login(login, "pw-" + login)
        return c

    def read_reply(self, f):
        lines = []
        while True:
            line = f.readline()
            if not line:
                return lines
            lines.append(line.decode())
            if line[3:4] != b"-":
                return lines

    # --- before TLS ---------------------------------------------------------
    def test_auth_refused_before_tls_on_587(self):
        s = socket.create_connection((self.sb.host, self.sb.port("submission")), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\n")
        ehlo = "".join(self.read_reply(f))
        self.assertIn("STARTTLS", ehlo)
        self.assertNotIn("AUTH", ehlo)
        s.sendall(("AUTH PLAIN %s\r\n" % b64("\0alice\0pw-alice")).encode())
        self.assertTrue(self.read_reply(f)[0].startswith("538 5.7.11 "))
        s.sendall(b"MAIL FROM:<alice@example.test>\r\n")
        self.assertEqual(self.read_reply(f), ["530 5.7.0 Authentication required\r\n"])
        s.close()

    def test_mail_without_auth_on_587_is_530_even_under_tls(self):
        with self.submission() as c:
            self.assertEqual(c.mail("alice@" + DOMAIN)[0], 530)

    # --- AUTH -----------------------------------------------------------------
    def test_auth_plain_and_login_succeed(self):
        for mech in ("PLAIN", "LOGIN"):
            with self.submission() as c:
                c.user, c.password = "alice", "pw-alice"
                code, msg = c.auth(mech, getattr(c, "auth_" + mech.lower()),
                                   initial_response_ok=(mech == "PLAIN"))
                self.assertEqual((code, msg), (235, b"2.7.0 Authentication successful"))
                self.assertEqual(c.docmd("AUTH PLAIN")[0], 503)  # already authenticated

    def test_auth_plain_without_initial_response_and_cancel(self):
        with self.submission() as c:
            self.assertEqual(c.docmd("AUTH PLAIN"), (334, b""))
            self.assertEqual(c.docmd("*")[0], 501)
            self.assertEqual(c.docmd("AUTH PLAIN"), (334, b""))
            self.assertEqual(c.docmd(b64("alice\0alice\0pw-alice"))[0], 235)

    def test_wrong_password_535_then_421_after_the_limit(self):
        s = socket.create_connection((self.sb.host, self.sb.port("submission")), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\nSTARTTLS\r\n")
        self.read_reply(f)
        self.read_reply(f)
        t = self.ctx().wrap_socket(s, server_hostname="mail." + DOMAIN)
        g = t.makefile("rb")
        t.sendall(b"EHLO x\r\n")
        self.read_reply(g)
        replies = []
        for i in range(3):
            t.sendall(("AUTH PLAIN %s\r\n" % b64("\0alice\0wrong%d" % i)).encode())
            replies.append(self.read_reply(g)[0])
        self.assertEqual(replies, ["535 5.7.8 Error: authentication failed\r\n"] * 3)
        # The limit (3) is reached: 421 and the connection is closed.
        self.assertEqual(self.read_reply(g),
                         ["421 4.7.0 Error: too many authentication failures\r\n"])
        self.assertEqual(g.read(), b"")
        t.close()
        # An unknown user gets the same answer as a wrong password.
        with self.submission() as c:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                c.login("nosuchuser", "x")
            self.assertEqual(cm.exception.smtp_code, 535)

    def test_failure_delay_grows(self):
        with Sandbox(domain=DOMAIN, params={"smtpd_auth_failure_delay": "1s",
                                            "smtpd_auth_failure_limit": "5"}) as sb:
            sb.user_add("alice", "pw-alice")
            sb.start()
            c = smtplib.SMTP(sb.host, sb.port("submission"), timeout=30)
            c.starttls(context=ssl.create_default_context(
                cafile=os.path.join(sb.dir, "tls", "cert.pem")))
            c.ehlo("x")
            times = []
            for i in range(3):
                t0 = time.monotonic()
                self.assertEqual(c.docmd("AUTH", "PLAIN " + b64("\0alice\0bad"))[0], 535)
                times.append(time.monotonic() - t0)
            c.close()
            self.assertGreaterEqual(times[0], 0.9)
            self.assertGreaterEqual(times[1], 1.9)
            self.assertGreaterEqual(times[2], 3.9)

    # --- submission policy ---------------------------------------------------------
    def test_sender_spoofing_by_authenticated_user_is_refused(self):
        with self.submission("alice") as c:
            code, msg = c.mail("bob@" + DOMAIN)
            self.assertEqual(code, 553)
            self.assertIn(b"5.7.1", msg)
            c.rset()
            self.assertEqual(c.mail("someone@remote.example")[0], 553)
            c.rset()
            self.assertEqual(c.mail("alice+lists@" + DOMAIN)[0], 250)  # own, with extension
            c.rset()
            self.assertEqual(c.mail("sales@" + DOMAIN)[0], 250)  # smtpd_sender_login_maps
            c.rset()
            self.assertEqual(c.mail("anyone@shared.example")[0], 250)  # @domain entry
        with self.submission("bob") as c:
            self.assertEqual(c.mail("anyone@shared.example")[0], 553)
            c.rset()
            self.assertEqual(c.mail("sales@" + DOMAIN)[0], 250)

    def test_authenticated_relay_to_remote_domain_accepted_on_587(self):
        with self.submission("alice") as c:
            self.assertEqual(c.mail("alice@" + DOMAIN)[0], 250)
            self.assertEqual(c.rcpt("friend@remote.example")[0], 250)
            code, msg = c.data(b"Subject: relay\r\n\r\nhello\r\n")
            self.assertEqual(code, 250)
        qid = msg.decode().split()[-1]
        deadline = time.time() + 20
        show = ""
        while time.time() < deadline:
            show = self.sb.mailctl("queue", "show", qid).stdout
            if "sasl_user: alice" in show:
                break
            time.sleep(0.2)
        self.assertIn("sasl_user: alice", show)
        self.assertIn("protocol: ESMTPSA", show)
        # Submission adds Date and Message-ID when missing.
        self.assertIn("\nDate: ", show)
        self.assertRegex(show, r"\nMessage-ID: <[^>]+@mail\.example\.test>")
        self.sb.mailctl("queue", "delete", qid)

    def test_submission_keeps_existing_date_and_message_id(self):
        before = len(self.sb.messages("alice"))
        msg = (b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <keep@client>\r\n"
               b"Subject: keep\r\n\r\nbody\r\n")
        with self.submission("alice") as c:
            c.sendmail("alice@" + DOMAIN, ["alice@" + DOMAIN], msg)
        paths = self.sb.wait_messages("alice", before + 1)
        with open(sorted(paths, key=os.path.getmtime)[-1]) as f:
            text = f.read()
        self.assertEqual(text.count("Message-ID:"), 1)
        self.assertEqual(text.count("\nDate:"), 1)
        self.assertIn("Message-ID: <keep@client>", text)

    def test_unauthenticated_relay_denied_on_port_25_even_with_tls(self):
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as c:
            c.starttls(context=self.ctx())
            c.ehlo("x")
            self.assertEqual(c.mail("x@remote.example")[0], 250)
            self.assertEqual(c.rcpt("y@other.example")[0], 554)

    def test_swaks_auth_login_on_587(self):
        p = subprocess.run(
            ["swaks", "--server", self.sb.host, "--port", str(self.sb.port("submission")),
             "--tls", "--auth", "LOGIN", "--auth-user", "bob", "--auth-password", "pw-bob",
             "--from", "bob@" + DOMAIN, "--to", "alice@" + DOMAIN],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("235 2.7.0 Authentication successful", p.stdout)
        self.assertIn("250 2.0.0 Ok: queued as", p.stdout)


if __name__ == "__main__":
    unittest.main()
