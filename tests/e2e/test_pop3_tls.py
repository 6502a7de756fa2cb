"""End-to-end tests of TLS and SASL in pop3d: STLS (RFC 2595), POP3S on
995, AUTH PLAIN (RFC 5034) with and without an initial response, the
plain-text login policy, and fetchmail over POP3S.
"""

import base64
import os
import poplib
import smtplib
import ssl
import stat
import subprocess
import tempfile
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"
REFUSED = b"-ERR [AUTH] Plaintext authentication disallowed without TLS"


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Pop3TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(domain=DOMAIN, params={"pop3d_auth_failure_delay": "0"})
        for u in ("alice", "bob", "carol", "dave"):
            cls.sb.user_add(u, "pw-" + u)
        cls.sb.start()
        cls.cafile = os.path.join(cls.sb.dir, "tls", "cert.pem")

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def ctx(self):
        return ssl.create_default_context(cafile=self.cafile)

    def deliver(self, user, subject):
        before = len(self.sb.messages(user))
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.sendmail("sender@remote.example", [user + "@" + DOMAIN],
                       ("Subject: %s\r\n\r\nbody of %s\r\n" % (subject, subject)).encode())
        self.assertEqual(len(self.sb.wait_messages(user, before + 1)), before + 1)

    def test_capa_offers_stls_and_sasl_before_tls_only(self):
        p = poplib.POP3(self.sb.host, self.sb.port("pop3"), timeout=30)
        caps = p.capa()
        self.assertIn("STLS", caps)
        self.assertEqual(caps.get("SASL"), ["PLAIN"])
        self.assertIn("USER", caps)  # loopback: plain-text logins allowed by default
        p.stls(context=self.ctx())
        caps = p.capa()
        self.assertNotIn("STLS", caps)
        self.assertEqual(caps.get("SASL"), ["PLAIN"])
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd("STLS")
        self.assertEqual(cm.exception.args[0], b"-ERR Command not permitted when TLS active")
        p.quit()

    def test_stls_then_user_pass_login(self):
        self.deliver("alice", "stls-login")
        p = poplib.POP3(self.sb.host, self.sb.port("pop3"), timeout=30)
        p.stls(context=self.ctx())
        self.assertEqual(p.sock.version(), "TLSv1.3")
        p.user("alice")
        self.assertTrue(p.pass_("pw-alice").startswith(b"+OK Logged in"))
        count, _ = p.stat()
        self.assertGreaterEqual(count, 1)
        self.assertIn(b"Subject: stls-login", b"\n".join(p.retr(count)[1]))
        p.quit()
        self.sb.expect_log_text("method=USER, tls=TLSv1.3")

    def test_stls_pipelined_command_is_discarded(self):
        import socket
        s = socket.create_connection((self.sb.host, self.sb.port("pop3")), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"STLS\r\nCAPA\r\n")
        self.assertEqual(f.readline(), b"+OK Begin TLS negotiation\r\n")
        t = self.ctx().wrap_socket(s, server_hostname="mail." + DOMAIN)
        g = t.makefile("rb")
        t.sendall(b"NOOP\r\n")
        # NOOP in AUTHORIZATION state: an -ERR, not the CAPA list.
        self.assertTrue(g.readline().startswith(b"-ERR"))
        t.sendall(b"QUIT\r\n")
        self.assertTrue(g.readline().startswith(b"+OK"))
        t.close()

    def test_pop3s_user_pass_login(self):
        self.deliver("bob", "pop3s-login")
        p = poplib.POP3_SSL(self.sb.host, self.sb.port("pop3s"), timeout=30, context=self.ctx())
        self.assertNotIn("STLS", p.capa())
        p.user("bob")
        self.assertTrue(p.pass_("pw-bob").startswith(b"+OK"))
        self.assertGreaterEqual(p.stat()[0], 1)
        p.quit()

    def test_auth_plain_with_and_without_initial_response(self):
        p = poplib.POP3_SSL(self.sb.host, self.sb.port("pop3s"), timeout=30, context=self.ctx())
        r = p._shortcmd("AUTH PLAIN " + b64("\0carol\0pw-carol"))
        self.assertTrue(r.startswith(b"+OK Logged in"), r)
        p.quit()
        p = poplib.POP3_SSL(self.sb.host, self.sb.port("pop3s"), timeout=30, context=self.ctx())
        p._putcmd("AUTH PLAIN")
        self.assertEqual(p._getline()[0], b"+ ")
        r = p._shortcmd(b64("carol\0carol\0pw-carol"))
        self.assertTrue(r.startswith(b"+OK Logged in"), r)
        p.quit()
        p = poplib.POP3_SSL(self.sb.host, self.sb.port("pop3s"), timeout=30, context=self.ctx())
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd("AUTH PLAIN " + b64("\0carol\0wrong"))
        self.assertEqual(cm.exception.args[0], b"-ERR [AUTH] Authentication failed")
        # Proxy logins (authzid other than the login) are refused.
        with self.assertRaises(poplib.error_proto):
            p._shortcmd("AUTH PLAIN " + b64("alice\0carol\0pw-carol"))
        with self.assertRaises(poplib.error_proto):
            p._shortcmd("AUTH PLAIN not-base64!")
        with self.assertRaises(poplib.error_proto):
            p._shortcmd("AUTH CRAM-MD5")
        p.close()

    def test_fetchmail_over_pop3s(self):
        self.deliver("dave", "fetchmail-pop3s")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "fetched.mbox")
            rc = os.path.join(tmp, "fetchmailrc")
            with open(rc, "w") as f:
                f.write('poll %s service %d protocol pop3 timeout 30\n'
                        '  user "dave" password "pw-dave" is "dave" here\n'
                        '  ssl sslcertck sslcertfile "%s" sslcertpath "%s"\n'
                        '  sslproto "TLS1.2+" sslcommonname "mail.example.test" keep\n'
                        '  mda "cat >> %s"\n'
                        % (self.sb.host, self.sb.port("pop3s"), self.cafile,
                           os.path.dirname(self.cafile), out))
            os.chmod(rc, stat.S_IRUSR | stat.S_IWUSR)
            env = dict(os.environ, HOME=tmp, FETCHMAILHOME=tmp)
            p = subprocess.run(["fetchmail", "-f", rc, "--nosyslog", "-v", "--nodetach",
                                "--pidfile", os.path.join(tmp, "pid")],
                               capture_output=True, text=True, timeout=60, env=env)
            log = p.stdout + p.stderr
            self.assertEqual(p.returncode, 0, log)
            with open(out) as f:
                self.assertIn("Subject: fetchmail-pop3s", f.read())
            self.assertIn("TLS", log)


class Pop3PlaintextPolicyTest(unittest.TestCase):
    """pop3d_plaintext_auth_loopback = no: even loopback clients need TLS."""

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(domain=DOMAIN, params={"pop3d_plaintext_auth_loopback": "no",
                                                "pop3d_auth_failure_delay": "0"})
        cls.sb.user_add("alice", "pw-alice")
        cls.sb.start()
        cls.cafile = os.path.join(cls.sb.dir, "tls", "cert.pem")

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def test_plaintext_login_refused_without_tls(self):
        p = poplib.POP3(self.sb.host, self.sb.port("pop3"), timeout=30)
        caps = p.capa()
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        self.assertNotIn("SASL", caps)
        with self.assertRaises(poplib.error_proto) as cm:
            p.user("alice")
        self.assertEqual(cm.exception.args[0], REFUSED)
        with self.assertRaises(poplib.error_proto) as cm:
            p.pass_("pw-alice")
        self.assertEqual(cm.exception.args[0], REFUSED)
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd("AUTH PLAIN " + b64("\0alice\0pw-alice"))
        self.assertEqual(cm.exception.args[0], REFUSED)
        # After STLS the same login works.
        p.stls(context=ssl.create_default_context(cafile=self.cafile))
        self.assertIn("USER", p.capa())
        p.user("alice")
        self.assertTrue(p.pass_("pw-alice").startswith(b"+OK"))
        p.quit()
        self.sb.expect_log_text("plaintext login refused without TLS")

    def test_pop3s_login_allowed(self):
        p = poplib.POP3_SSL(self.sb.host, self.sb.port("pop3s"), timeout=30,
                            context=ssl.create_default_context(cafile=self.cafile))
        p.user("alice")
        self.assertTrue(p.pass_("pw-alice").startswith(b"+OK"))
        p.quit()

    def test_plaintext_auth_yes_allows_everyone(self):
        with Sandbox(domain=DOMAIN, params={"pop3d_plaintext_auth_loopback": "no",
                                            "pop3d_plaintext_auth": "yes"}) as sb:
            sb.user_add("alice", "pw-alice")
            sb.start()
            p = poplib.POP3(sb.host, sb.port("pop3"), timeout=30)
            p.user("alice")
            self.assertTrue(p.pass_("pw-alice").startswith(b"+OK"))
            p.quit()


if __name__ == "__main__":
    unittest.main()
