"""End-to-end tests of TLS in smtpd: STARTTLS (RFC 3207), implicit TLS on
465 (RFC 8314), the Received header, session resumption and certificate
reload. Clients: Python's smtplib/ssl, swaks, openssl s_client.
"""

import os
import re
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(domain=DOMAIN, params={"smtpd_auth_failure_delay": "0"})
        cls.sb.user_add("alice", "pw-alice")
        cls.sb.start()
        cls.cafile = os.path.join(cls.sb.dir, "tls", "cert.pem")

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def ctx(self):
        return ssl.create_default_context(cafile=self.cafile)

    def read_reply(self, f):
        lines = []
        while True:
            line = f.readline()
            if not line:
                return lines
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    # --- STARTTLS ----------------------------------------------------------
    def test_starttls_offered_only_before_tls_and_auth_only_after(self):
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as c:
            c.ehlo("client.example")
            self.assertIn("starttls", c.esmtp_features)
            self.assertNotIn("auth", c.esmtp_features)
            self.assertEqual(c.starttls(context=self.ctx())[0], 220)
            c.ehlo("client.example")
            self.assertNotIn("starttls", c.esmtp_features)
            self.assertIn("auth", c.esmtp_features)
            self.assertEqual(c.sock.version(), "TLSv1.3")

    def test_mail_over_starttls_records_tls_in_received_header(self):
        marker = "tls-received-%d" % time.time_ns()
        before = len(self.sb.messages("alice"))
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as c:
            c.starttls(context=self.ctx())
            c.sendmail("someone@remote.example", ["alice@" + DOMAIN],
                       ("Subject: %s\r\n\r\nbody\r\n" % marker).encode())
        msgs = self.sb.wait_messages("alice", before + 1)
        text = "".join(open(p, errors="replace").read() for p in msgs)
        self.assertIn(marker, text)
        m = re.search(r"Received: from \S+ \(unknown \[127\.0\.0\.1\]\)\n"
                      r"\t\(using (TLSv1\.[23]) with cipher (\S+) \(\d+/\d+ bits\)\)\n"
                      r"\tby mail\.example\.test \(tegami\) with ESMTPS id", text)
        self.assertIsNotNone(m, text)

    def test_starttls_injection_pipelined_command_is_never_answered(self):
        # CVE-2011-0411: "STARTTLS\r\nNOOP\r\n" in one write.
        s = socket.create_connection((self.sb.host, self.sb.port("smtp")), timeout=30)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220 "))
        s.sendall(b"EHLO x\r\n")
        self.read_reply(f)
        s.sendall(b"STARTTLS\r\nNOOP\r\n")
        reply = self.read_reply(f)
        self.assertEqual(reply, [b"220 2.0.0 Ready to start TLS\r\n"])
        # Nothing else (no 250 for the NOOP) before the handshake ...
        s.settimeout(0.5)
        try:
            self.assertEqual(s.recv(1, socket.MSG_PEEK), b"")
        except (socket.timeout, BlockingIOError):
            pass
        s.settimeout(30)
        t = self.ctx().wrap_socket(s, server_hostname="mail." + DOMAIN)
        g = t.makefile("rb")
        # ... nor after it: the first reply is the EHLO's, then QUIT's.
        t.sendall(b"EHLO y\r\n")
        ehlo = self.read_reply(g)
        self.assertTrue(ehlo[0].startswith(b"250-mail.example.test"), ehlo)
        t.sendall(b"QUIT\r\n")
        self.assertEqual(self.read_reply(g), [b"221 2.0.0 Bye\r\n"])
        t.close()
        time.sleep(0.3)
        self.sb.expect_log_text("discarding 6 bytes pipelined after STARTTLS")

    def test_starttls_resets_session_state(self):
        s = socket.create_connection((self.sb.host, self.sb.port("smtp")), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\n")
        self.read_reply(f)
        s.sendall(b"STARTTLS\r\n")
        self.assertTrue(self.read_reply(f)[0].startswith(b"220 "))
        t = self.ctx().wrap_socket(s, server_hostname="mail." + DOMAIN)
        g = t.makefile("rb")
        # RFC 3207 §4.2: the EHLO before TLS is forgotten.
        t.sendall(b"MAIL FROM:<a@remote.example>\r\n")
        self.assertTrue(self.read_reply(g)[0].startswith(b"503 5.5.1"))
        t.sendall(b"EHLO y\r\nSTARTTLS\r\nQUIT\r\n")
        self.read_reply(g)
        self.assertTrue(self.read_reply(g)[0].startswith(b"554 5.5.1"))  # TLS already active
        self.assertEqual(self.read_reply(g), [b"221 2.0.0 Bye\r\n"])
        t.close()

    def test_openssl_s_client_starttls_verifies_sandbox_certificate(self):
        p = subprocess.run(
            ["openssl", "s_client", "-starttls", "smtp", "-connect",
             "%s:%d" % (self.sb.host, self.sb.port("smtp")), "-CAfile", self.cafile,
             "-verify_return_error", "-verify_hostname", "mail." + DOMAIN, "-brief",
             "-nocommands", "-ign_eof"],
            input="QUIT\r\n", capture_output=True, text=True, timeout=30)
        out = p.stdout + p.stderr
        self.assertIn("Verification: OK", out)
        self.assertIn("Protocol version: TLSv1.3", out)
        self.assertIn("221 2.0.0 Bye", out)

    def test_tls_below_1_2_is_refused(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as c:
            c.ehlo("x")
            with self.assertRaises((ssl.SSLError, OSError, smtplib.SMTPServerDisconnected)):
                c.starttls(context=ctx)

    def test_swaks_starttls(self):
        p = subprocess.run(
            ["swaks", "--server", self.sb.host, "--port", str(self.sb.port("smtp")),
             "--tls", "--to", "alice@" + DOMAIN, "--from", "s@remote.example",
             "--header", "Subject: swaks-starttls"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("TLS started", p.stdout)
        self.assertIn("250 2.0.0 Ok: queued as", p.stdout)

    # --- implicit TLS (465) --------------------------------------------------
    def test_implicit_tls_on_465_greets_after_handshake(self):
        with smtplib.SMTP_SSL(self.sb.host, self.sb.port("smtps"), timeout=30,
                              context=self.ctx()) as c:
            code, _ = c.ehlo("client.example")
            self.assertEqual(code, 250)
            self.assertNotIn("starttls", c.esmtp_features)
            self.assertIn("auth", c.esmtp_features)

    def test_plain_text_client_on_465_gets_no_greeting(self):
        s = socket.create_connection((self.sb.host, self.sb.port("smtps")), timeout=30)
        s.sendall(b"EHLO x\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        self.assertNotIn(b"220", data)
        self.assertNotIn(b"250", data)

    def test_swaks_implicit_tls_with_auth(self):
        p = subprocess.run(
            ["swaks", "--server", self.sb.host, "--port", str(self.sb.port("smtps")),
             "--tlsc", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "pw-alice",
             "--from", "alice@" + DOMAIN, "--to", "alice@" + DOMAIN],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("235 2.7.0 Authentication successful", p.stdout)
        self.assertIn("250 2.0.0 Ok: queued as", p.stdout)

    # --- resumption and reload ------------------------------------------------
    def test_session_resumes_with_ticket(self):
        sess = os.path.join(self.sb.dir, "sess.pem")
        args = ["openssl", "s_client", "-connect",
                "%s:%d" % (self.sb.host, self.sb.port("smtps")), "-CAfile", self.cafile,
                "-nocommands", "-ign_eof"]
        p1 = subprocess.run(args + ["-sess_out", sess], input="QUIT\r\n",
                            capture_output=True, text=True, timeout=30)
        self.assertIn("221", p1.stdout)
        p2 = subprocess.run(args + ["-sess_in", sess], input="QUIT\r\n",
                            capture_output=True, text=True, timeout=30)
        self.assertIn("Reused, TLSv1.3", p2.stdout)
        self.assertIn("221", p2.stdout)
        key = os.path.join(self.sb.dir, "data", "tls_ticket.key")
        self.assertEqual(os.stat(key).st_size, 80)
        self.assertEqual(os.stat(key).st_mode & 0o077, 0)

    def test_reload_picks_up_a_new_certificate(self):
        # A separate sandbox: this test replaces the certificate.
        with Sandbox(domain=DOMAIN) as sb:
            sb.start()
            port = sb.port("smtps")
            old = self.peer_cert_of(sb, port)
            tls = os.path.join(sb.dir, "tls")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                            "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                            "-subj", "/CN=new.example.test",
                            "-keyout", os.path.join(tls, "key.pem"),
                            "-out", os.path.join(tls, "cert.pem")],
                           check=True, capture_output=True, timeout=30)
            sb.reload()
            deadline = time.time() + 15
            new = old
            while new == old and time.time() < deadline:
                time.sleep(0.3)
                new = self.peer_cert_of(sb, port)
            self.assertNotEqual(new, old)
            pem = open(os.path.join(tls, "cert.pem")).read()
            self.assertEqual(ssl.DER_cert_to_PEM_cert(new).strip(), pem.strip())

    @staticmethod
    def peer_cert_of(sb, port):
        with socket.create_connection((sb.host, port), timeout=30) as s:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with ctx.wrap_socket(s) as t:
                return t.getpeercert(binary_form=True)



class TlsTimeoutTest(unittest.TestCase):
    """An idle TLS session ends with a 421 the client can read (encrypted,
    not clear text written under the TLS layer)."""

    def test_idle_timeout_inside_tls_gets_an_encrypted_421(self):
        with Sandbox(domain=DOMAIN, params={"smtpd_timeout": "2s"}) as sb:
            sb.start()
            ctx = ssl.create_default_context(cafile=os.path.join(sb.dir, "tls", "cert.pem"))
            c = smtplib.SMTP(sb.host, sb.port("smtp"), timeout=30)
            try:
                c.ehlo("client.example")
                code, _ = c.starttls(context=ctx)
                self.assertEqual(code, 220)
                c.ehlo("client.example")
                time.sleep(3)
                code, text = c.getreply()
                self.assertEqual(code, 421, text)
                self.assertIn(b"4.4.2", text)
            finally:
                c.close()

if __name__ == "__main__":
    unittest.main()
