"""End-to-end tests of abuse resistance: per-client connection count and
rate limits (smtpd asking the anvil service), the per-client AUTH failure
limit (also through anvil), the pre-greeting talker check, anvil failing
open, and tarpitting after errors.

The tests connect from 127.0.0.1, which is in the default mynetworks and
so in the default smtpd_client_event_limit_exceptions: every sandbox here
that tests a limit sets the exception list empty.
"""

import base64
import os
import signal
import smtplib
import socket
import ssl
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"
MESSAGE = "From: a@example.test\r\nTo: alice@example.test\r\nSubject: abuse\r\n\r\nhello\r\n"


def read_reply(sock, timeout=10):
    """Read one complete SMTP reply (all lines); b"" if the server closed first."""
    sock.settimeout(timeout)
    data = b""
    while True:
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) < 4 or line[3:4] == b" ":
                return data
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def read_until_closed(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


class AbuseCase(unittest.TestCase):
    PARAMS = {}

    @classmethod
    def setUpClass(cls):
        params = {"smtpd_client_event_limit_exceptions": "", "smtpd_timeout": "10s"}
        params.update(cls.PARAMS)
        cls.sb = Sandbox(params=params)
        cls.sb.user_add("alice", "pw")
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def connect(self):
        s = socket.create_connection((self.sb.host, self.sb.port("smtp")), timeout=10)
        self.addCleanup(s.close)
        return s

    def greeted(self):
        """A connection that got the final 220 greeting line."""
        s = self.connect()
        reply = read_reply(s)
        self.assertIn(b"220 ", reply)
        return s

    def quit(self, s):
        s.sendall(b"QUIT\r\n")
        self.assertTrue(read_reply(s).startswith(b"221"))
        s.close()

    def send_mail(self, subject):
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as c:
            c.sendmail("a@example.test", ["alice@example.test"],
                       MESSAGE.replace("Subject: abuse", "Subject: " + subject))


class PregreetTest(AbuseCase):
    PARAMS = {"smtpd_pregreet_wait": "1s"}

    def test_client_talking_before_greeting_is_rejected_and_logged(self):
        s = self.connect()
        s.sendall(b"EHLO x\r\n")
        data = read_until_closed(s)
        self.assertIn(b"554 5.5.1 Error: SMTP protocol violation (talked before greeting)", data)
        # The EHLO was never executed, and the final greeting never came.
        self.assertNotIn(b"250", data)
        self.assertNotIn(b"220 ", data)
        self.sb.expect_log_text("pregreet violation")
        self.sb.expect_log_text("EHLO x")

    def test_client_that_waits_gets_multiline_greeting_and_sends_mail(self):
        before = len(self.sb.messages("alice"))
        start = time.monotonic()
        s = self.connect()
        greeting = read_reply(s)
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.assertTrue(greeting.startswith(b"220-"), greeting)
        self.assertIn(b"\r\n220 ", greeting)
        self.quit(s)
        self.send_mail("pregreet ok")
        self.assertGreater(len(self.sb.wait_messages("alice", before + 1)), before)


class ConnectionCountTest(AbuseCase):
    PARAMS = {"smtpd_client_connection_count_limit": "2"}

    def test_third_simultaneous_connection_gets_421_then_room_again(self):
        first = self.greeted()
        second = self.greeted()
        third = self.connect()
        data = read_until_closed(third)
        self.assertIn(b"421 4.7.0 Error: too many connections from 127.0.0.1", data)
        self.assertNotIn(b"220", data)
        self.sb.expect_log_text("Connection concurrency limit exceeded: 3 from")
        # The two open sessions still work.
        second.sendall(b"NOOP\r\n")
        self.assertTrue(read_reply(second).startswith(b"250"))
        # Close one: a new connection is accepted (anvil hears the disconnect
        # when the session ends, so allow it a moment).
        self.quit(first)
        deadline = time.time() + 10
        while True:
            s = self.connect()
            reply = read_reply(s)
            if b"220 " in reply or time.time() > deadline:
                break
            s.close()
            time.sleep(0.1)
        self.assertIn(b"220 ", reply)
        self.quit(s)
        self.quit(second)


class ConnectionRateTest(AbuseCase):
    PARAMS = {"smtpd_client_connection_rate_limit": "3", "anvil_rate_time_unit": "3s"}

    def test_connections_beyond_rate_get_421_until_the_window_passes(self):
        # Let the window of mailctl start's readiness probe run out: the
        # probe only connects and closes, and smtpd counts it when a process
        # takes it, which on a loaded machine can be well after start returned.
        deadline = time.time() + 30
        while self.sb.log().count("disconnect from") < 3 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(3.5)
        results = []
        for _ in range(5):
            s = self.connect()
            reply = read_reply(s)
            results.append(reply[:3])
            if reply.startswith(b"220"):
                self.quit(s)
            else:
                self.assertIn(b"421 4.7.0 Error: too many connections from 127.0.0.1", reply)
                s.close()
        self.assertEqual(results, [b"220"] * 3 + [b"421"] * 2)
        self.sb.expect_log_text("Connection rate limit exceeded: 4 from")
        time.sleep(3.5)
        s = self.greeted()
        self.quit(s)


class AnvilFailOpenTest(AbuseCase):
    PARAMS = {"smtpd_client_connection_count_limit": "2", "anvil_client_retry_time": "1s"}

    def anvil_pid(self):
        pids = self.sb.service_pids("anvil")
        self.assertEqual(len(pids), 1, self.sb.status())
        return pids[0]

    def test_killed_anvil_does_not_stop_mail_and_is_restarted(self):
        before = len(self.sb.messages("alice"))
        old = self.anvil_pid()
        os.kill(old, signal.SIGKILL)
        self.send_mail("anvil killed")
        self.assertGreater(len(self.sb.wait_messages("alice", before + 1)), before)
        deadline = time.time() + 15
        while time.time() < deadline:
            pids = self.sb.service_pids("anvil")
            if pids and pids != [old]:
                break
            time.sleep(0.1)
        self.assertTrue(pids and old not in pids, self.sb.status())
        # The new anvil counts again.
        time.sleep(1.5)  # past anvil_client_retry_time, in case a client failed
        first = self.greeted()
        second = self.greeted()
        data = read_until_closed(self.connect())
        self.assertIn(b"421 4.7.0", data)
        self.quit(first)
        self.quit(second)

    def test_hung_anvil_does_not_stop_mail(self):
        before = len(self.sb.messages("alice"))
        pid = self.anvil_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            self.send_mail("anvil stopped")
            self.sb.expect_log_text("allowing connections without limits")
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertGreater(len(self.sb.wait_messages("alice", before + 1)), before)


class AuthCase(AbuseCase):
    def auth(self, s, password):
        s.sendall(("AUTH PLAIN %s\r\n" % base64.b64encode(
            ("\0alice\0" + password).encode()).decode()).encode())
        return read_reply(s)

    def ehloed(self):
        s = self.greeted()
        s.sendall(b"EHLO client.example\r\n")
        self.assertIn(b"AUTH", read_reply(s))
        return s


class AuthFailureLimitTest(AuthCase):
    # Per-client limit 3 over all connections; the per-session limit is out of the way.
    PARAMS = {"smtpd_client_auth_failure_limit": "3", "smtpd_auth_failure_limit": "10",
              "smtpd_auth_failure_delay": "0", "smtpd_tls_auth_only": "no"}

    def test_failures_add_up_over_connections_then_421(self):
        # First connection: two wrong passwords, 535 each, then the client leaves.
        s = self.ehloed()
        for i in range(2):
            self.assertEqual(self.auth(s, "wrong%d" % i),
                             b"535 5.7.8 Error: authentication failed\r\n")
        self.quit(s)
        # Second connection: the third failure of this client reaches the limit.
        s = self.ehloed()
        data = self.auth(s, "wrong2") + read_until_closed(s)
        self.assertEqual(data, b"535 5.7.8 Error: authentication failed\r\n"
                         b"421 4.7.0 Error: too many authentication failures from 127.0.0.1\r\n")
        self.sb.expect_log_text("AUTH failure limit exceeded: 3 from")
        # A new connection right after: refused at AUTH, even with the right password,
        # before anything is checked.
        s = self.ehloed()
        data = self.auth(s, "pw") + read_until_closed(s)
        self.assertEqual(data,
                         b"421 4.7.0 Error: too many authentication failures from 127.0.0.1\r\n")
        # The counter is the client's, not the port's: submission refuses too.
        with smtplib.SMTP(self.sb.host, self.sb.port("submission"), timeout=30) as c:
            c.starttls(context=ssl.create_default_context(
                cafile=os.path.join(self.sb.dir, "tls", "cert.pem")))
            c.ehlo("client.example")
            code, msg = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0pw").decode())
            self.assertEqual((code, msg),
                             (421, b"4.7.0 Error: too many authentication failures from 127.0.0.1"))
        # Mail without AUTH still goes through on port 25.
        self.send_mail("after auth limit")


class AuthFailureLimitWindowTest(AuthCase):
    PARAMS = {"smtpd_client_auth_failure_limit": "2", "smtpd_auth_failure_limit": "10",
              "smtpd_auth_failure_delay": "0", "smtpd_tls_auth_only": "no",
              "anvil_rate_time_unit": "3s"}

    def test_limit_ends_with_the_window_and_success_is_not_counted(self):
        s = self.ehloed()
        self.assertTrue(self.auth(s, "bad").startswith(b"535 "))
        self.quit(s)
        # A success does not count as a failure; one more failure reaches the limit.
        s = self.ehloed()
        self.assertTrue(self.auth(s, "pw").startswith(b"235 "))
        self.quit(s)
        s = self.ehloed()
        self.assertIn(b"421 4.7.0 Error: too many authentication failures from 127.0.0.1",
                      self.auth(s, "bad") + read_until_closed(s))
        # After the window (3s from the first failure) the client may try again.
        time.sleep(3.5)
        s = self.ehloed()
        self.assertTrue(self.auth(s, "pw").startswith(b"235 "))
        self.quit(s)


class AuthFailureLimitFailOpenTest(AuthCase):
    PARAMS = {"smtpd_client_auth_failure_limit": "2", "smtpd_auth_failure_limit": "3",
              "smtpd_auth_failure_delay": "0", "smtpd_tls_auth_only": "no",
              "anvil_client_retry_time": "30s"}

    def test_hung_anvil_leaves_only_the_per_session_limit(self):
        pids = self.sb.service_pids("anvil")
        self.assertEqual(len(pids), 1, self.sb.status())
        os.kill(pids[0], signal.SIGSTOP)
        try:
            s = self.ehloed()
            replies = [self.auth(s, "bad%d" % i) for i in range(2)]
            replies.append(self.auth(s, "bad2") + read_until_closed(s))
        finally:
            os.kill(pids[0], signal.SIGCONT)
        # Not 421 at the client limit (2): anvil did not answer, so only the session's 3 count.
        self.assertEqual(replies, [b"535 5.7.8 Error: authentication failed\r\n"] * 2 +
                         [b"535 5.7.8 Error: authentication failed\r\n"
                          b"421 4.7.0 Error: too many authentication failures\r\n"])
        self.sb.expect_log_text("allowing connections without limits")


class TarpitTest(AbuseCase):
    PARAMS = {"smtpd_soft_error_limit": "2", "smtpd_error_sleep_time": "1s",
              "smtpd_hard_error_limit": "10"}

    def test_replies_are_delayed_after_soft_error_limit(self):
        s = self.greeted()
        times = []
        for _ in range(3):
            start = time.monotonic()
            s.sendall(b"BOGUS\r\n")
            reply = read_reply(s, timeout=30)
            times.append(time.monotonic() - start)
            self.assertTrue(reply.startswith(b"5"), reply)
        # Errors 2 and 3 reached the soft limit: each reply waited the sleep time.
        self.assertGreaterEqual(times[1], 0.95, times)
        self.assertGreaterEqual(times[2], 0.95, times)
        self.sb.expect_log_text("tarpit: 2 errors from")
        self.quit(s)


if __name__ == "__main__":
    unittest.main()
