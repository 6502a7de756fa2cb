"""End-to-end tests of pop3d: mail delivered over SMTP, read with poplib.

Each test uses its own user so the tests do not depend on one another.
"""

import imaplib
import os
import poplib
import re
import smtplib
import socket
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]


def crlf_size(data):
    """Size with CRLF line ends (what POP3 reports, the W= of the file name)."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


class Pop3Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(domain=DOMAIN, params={"pop3d_auth_failure_delay": "0"})
        for u in USERS:
            cls.sb.user_add(u, "pw-" + u)
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # --- helpers --------------------------------------------------------
    def deliver(self, user, subject, body):
        """Send one message to user over SMTP and wait until it is in the Maildir."""
        before = len(self.sb.messages(user))
        msg = ("From: sender@%s\r\nTo: %s@%s\r\nSubject: %s\r\n\r\n%s"
               % (DOMAIN, user, DOMAIN, subject, body))
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.sendmail("sender@" + DOMAIN, [user + "@" + DOMAIN], msg.encode())
        paths = self.sb.wait_messages(user, before + 1)
        self.assertEqual(len(paths), before + 1, "message to %s not delivered" % user)

    def files(self, user):
        """{UIDL: content} of the user's Maildir (new/ and cur/). The UIDL is
        Dovecot's %08Xu%08Xv: the IMAP UID (",U=" in the file name, given by
        the index) and the UIDVALIDITY (the file tegami-uidvalidity); files
        not yet in the index (still in new/) are keyed by their base name."""
        out = {}
        uidvalidity = None
        side = os.path.join(self.sb.maildir(user), "tegami-uidvalidity")
        if os.path.exists(side):
            with open(side) as f:
                uidvalidity = int(f.read().split()[0])
        for p in self.sb.messages(user):
            name = os.path.basename(p)
            base = name.split(":")[0]
            key = base.split(",")[0]
            for part in base.split(",")[1:]:
                if part.startswith("U=") and uidvalidity is not None:
                    key = "%08X%08X" % (int(part[2:]), uidvalidity)
            with open(p, "rb") as f:
                out[key] = f.read()
        return out

    def login(self, user, password=None, retry_in_use=5.0):
        deadline = time.time() + retry_in_use
        while True:
            p = poplib.POP3(self.sb.host, self.sb.port("pop3"), timeout=30)
            p.user(user)
            try:
                p.pass_(password or "pw-" + user)
                return p
            except poplib.error_proto as e:
                # The process serving a dropped connection may not have seen the EOF yet.
                p.close()
                if b"[IN-USE]" not in e.args[0] or time.time() > deadline:
                    raise
                time.sleep(0.1)

    def raw(self):
        s = socket.create_connection((self.sb.host, self.sb.port("pop3")), timeout=30)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"+OK"))
        return s, f

    # --- tests ----------------------------------------------------------
    def test_greeting_and_capabilities(self):
        p = poplib.POP3(self.sb.host, self.sb.port("pop3"), timeout=30)
        try:
            self.assertEqual(p.getwelcome(), b"+OK tegami POP3 ready")
            caps = p.capa()
            for c in ("TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING"):
                self.assertIn(c, caps)
            self.assertEqual(caps["EXPIRE"], ["NEVER"])
            self.assertEqual(caps["IMPLEMENTATION"], ["tegami"])
        finally:
            p.quit()

    def test_retr_top_list_uidl_match_the_maildir_byte_for_byte(self):
        user = "alice"
        self.deliver(user, "plain", "hello\r\nworld\r\n")
        self.deliver(user, "dots", "first\r\n.hidden\r\n..two\r\n.\r\n. space\r\nlast\r\n")
        p = self.login(user)
        files = self.files(user)  # after login: the index has named them
        try:
            count, size = p.stat()
            self.assertEqual(count, 2)
            self.assertEqual(size, sum(crlf_size(c) for c in files.values()))
            uidl = {}
            for line in p.uidl()[1]:
                n, uid = line.split()
                uidl[int(n)] = uid.decode()
            self.assertEqual(sorted(uidl.values()), sorted(files))
            sizes = {int(a): int(b) for a, b in (l.split() for l in p.list()[1])}
            for n, uid in uidl.items():
                content = files[uid]
                self.assertEqual(sizes[n], crlf_size(content))
                self.assertEqual(p.list(n), b"+OK %d %d" % (n, crlf_size(content)))
                resp, lines, _ = p.retr(n)
                self.assertEqual(resp, b"+OK %d octets" % crlf_size(content))
                self.assertEqual(b"\n".join(lines) + b"\n", content)
                header, body = content.split(b"\n\n", 1)
                resp, lines, _ = p.top(n, 0)
                self.assertEqual(b"\n".join(lines) + b"\n", header + b"\n\n")
                resp, lines, _ = p.top(n, 1)
                first = body.split(b"\n")[0]
                self.assertEqual(b"\n".join(lines) + b"\n", header + b"\n\n" + first + b"\n")
            dots = [c for c in files.values() if b"Subject: dots" in c][0]
            self.assertIn(b"\n.hidden\n..two\n.\n. space\nlast\n", dots)
        finally:
            p.quit()

    def test_dele_removes_the_file_only_after_quit(self):
        user = "bob"
        self.deliver(user, "one", "one\r\n")
        self.deliver(user, "two", "two\r\n")
        p = self.login(user)
        uid1 = p.uidl(1).split()[2].decode()
        self.assertTrue(p.dele(1).startswith(b"+OK"))
        self.assertEqual(len(self.sb.messages(user)), 2)  # nothing removed yet
        self.assertEqual(p.stat()[0], 1)
        for call in (lambda: p.list(1), lambda: p.retr(1), lambda: p.uidl(1),
                     lambda: p.top(1, 0)):
            with self.assertRaises(poplib.error_proto) as cm:
                call()
            self.assertEqual(cm.exception.args[0], b"-ERR no such message")
        self.assertEqual([int(l.split()[0]) for l in p.list()[1]], [2])
        with self.assertRaises(poplib.error_proto):
            p.dele(1)
        self.assertTrue(p.quit().startswith(b"+OK"))
        files = self.files(user)
        self.assertEqual(len(files), 1)
        self.assertNotIn(uid1, files)

    def test_dropped_connection_deletes_nothing(self):
        user = "carol"
        self.deliver(user, "keep1", "keep\r\n")
        self.deliver(user, "keep2", "keep\r\n")
        p = self.login(user)
        p.dele(1)
        p.dele(2)
        p.sock.close()  # no QUIT
        p.file.close()
        p = self.login(user)
        try:
            self.assertEqual(p.stat()[0], 2)
        finally:
            p.quit()
        self.assertEqual(len(self.sb.messages(user)), 2)

    def test_rset_undeletes(self):
        user = "dave"
        self.deliver(user, "r1", "r1\r\n")
        self.deliver(user, "r2", "r2\r\n")
        p = self.login(user)
        p.dele(1)
        p.dele(2)
        self.assertEqual(p.stat()[0], 0)
        self.assertTrue(p.rset().startswith(b"+OK"))
        self.assertEqual(p.stat()[0], 2)
        p.quit()
        self.assertEqual(len(self.sb.messages(user)), 2)

    def test_uidl_is_stable_across_sessions_and_new_to_cur(self):
        user = "erin"
        self.deliver(user, "u1", "u1\r\n")
        self.assertTrue(self.sb.messages(user)[0].startswith(os.path.join(self.sb.maildir(user), "new")))
        p = self.login(user)
        first = p.uidl()[1]
        p.quit()
        # Listing moved it to cur/.
        self.assertTrue(all("/cur/" in m for m in self.sb.messages(user)))
        self.deliver(user, "u2", "u2\r\n")
        p = self.login(user)
        second = p.uidl()[1]
        p.quit()
        self.assertEqual(len(second), 2)
        self.assertIn(first[0].split()[1], [l.split()[1] for l in second])
        p = self.login(user)
        self.assertEqual(p.uidl()[1], second)
        p.quit()

    def test_pop3_and_imap_share_the_index(self):
        """UIDL is the IMAP UID and UIDVALIDITY (%08X%08X); RETR sets \\Seen and
        DELE+QUIT expunges, both visible to IMAP."""
        user = "judy"
        for i in range(3):
            self.deliver(user, "shared %d" % i, "body %d\r\n" % i)
        p = self.login(user)
        uidl = [l.split()[1].decode() for l in p.uidl()[1]]
        p.retr(1)
        p.dele(3)
        self.assertTrue(p.quit().startswith(b"+OK"))
        m = imaplib.IMAP4(self.sb.host, self.sb.port("imap"), timeout=30)
        try:
            m.login(user, "pw-" + user)
            typ, data = m.select("INBOX")
            self.assertEqual(typ, "OK")
            self.assertEqual(int(data[0]), 2)
            uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b" ".join(
                x for x in m.untagged_responses.get("OK", []))).group(1))
            typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
            self.assertEqual(typ, "OK")
            seen = {}
            for line in data:
                mm = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", line)
                uid = int(mm.group(1) or mm.group(4))
                seen[uid] = b"\\Seen" in (mm.group(2) or mm.group(3) or b"")
            self.assertEqual(["%08X%08X" % (u, uidvalidity) for u in sorted(seen)], uidl[:2])
            self.assertEqual([seen[u] for u in sorted(seen)], [True, False])
        finally:
            m.logout()

    def test_second_concurrent_session_is_refused_in_use(self):
        user = "frank"
        p1 = self.login(user)
        p2 = poplib.POP3(self.sb.host, self.sb.port("pop3"), timeout=30)
        p2.user(user)
        with self.assertRaises(poplib.error_proto) as cm:
            p2.pass_("pw-" + user)
        self.assertTrue(cm.exception.args[0].startswith(b"-ERR [IN-USE]"), cm.exception.args[0])
        p2.close()
        p1.quit()
        p3 = self.login(user)
        p3.quit()

    def test_wrong_password_fails_and_disconnects_after_the_limit(self):
        user = "grace"
        p = poplib.POP3(self.sb.host, self.sb.port("pop3"), timeout=30)
        for i in range(3):
            p.user(user if i != 1 else "nosuchuser")
            with self.assertRaises(poplib.error_proto) as cm:
                p.pass_("wrong")
            self.assertEqual(cm.exception.args[0], b"-ERR [AUTH] Authentication failed")
        with self.assertRaises((poplib.error_proto, EOFError, OSError)):
            p.noop()
            p.noop()
        p.close()
        p = self.login(user)  # the right password still works
        p.quit()

    def test_address_login_and_case_are_accepted(self):
        user = "heidi"
        p = self.login(user.upper() + "@" + DOMAIN, "pw-" + user)
        self.assertEqual(p.stat()[0], 0)
        p.quit()

    def test_protocol_errors_get_err_and_session_continues(self):
        s, f = self.raw()
        try:
            s.sendall(b"STAT\r\n")
            self.assertTrue(f.readline().startswith(b"-ERR"))  # not logged in
            s.sendall(b"PASS x\r\n")
            self.assertTrue(f.readline().startswith(b"-ERR"))  # USER first
            s.sendall(b"USER " + b"a" * 3000 + b"\r\n")
            self.assertEqual(f.readline(), b"-ERR Line too long\r\n")
            s.sendall(b"XYZZY\r\n")
            self.assertEqual(f.readline(), b"-ERR unknown command\r\n")
            s.sendall(b"NOOP\x00\r\n")
            self.assertTrue(f.readline().startswith(b"-ERR"))
            s.sendall(b"USER ivan\r\nPASS pw-ivan\r\n")
            self.assertEqual(f.readline(), b"+OK\r\n")
            self.assertTrue(f.readline().startswith(b"+OK Logged in"))
            for cmd in (b"RETR 0", b"RETR 99", b"DELE 99", b"LIST 5", b"TOP 7 1", b"UIDL 3"):
                s.sendall(cmd + b"\r\n")
                self.assertEqual(f.readline(), b"-ERR no such message\r\n", cmd)
            s.sendall(b"RETR x\r\n")
            self.assertTrue(f.readline().startswith(b"-ERR"))
            s.sendall(b"QUIT\r\n")
            self.assertTrue(f.readline().startswith(b"+OK"))
            self.assertEqual(f.readline(), b"")
        finally:
            s.close()

    def test_pipelined_commands_are_all_answered_in_order(self):
        s, f = self.raw()
        try:
            s.sendall(b"CAPA\r\nUSER ivan\r\nPASS pw-ivan\r\nSTAT\r\nNOOP\r\nLIST\r\nQUIT\r\n")
            line = f.readline()
            self.assertTrue(line.startswith(b"+OK"))
            while line != b".\r\n":
                line = f.readline()
            self.assertEqual(f.readline(), b"+OK\r\n")
            self.assertTrue(f.readline().startswith(b"+OK Logged in"))
            self.assertTrue(f.readline().startswith(b"+OK 0 0"))
            self.assertEqual(f.readline(), b"+OK\r\n")
            self.assertTrue(f.readline().startswith(b"+OK 0 messages"))
            self.assertEqual(f.readline(), b".\r\n")
            self.assertTrue(f.readline().startswith(b"+OK"))
            self.assertEqual(f.readline(), b"")
        finally:
            s.close()

    def test_too_many_errors_disconnect(self):
        s, f = self.raw()
        try:
            s.sendall(b"BOGUS\r\n" * 50)
            n = 0
            try:
                while f.readline():
                    n += 1
            except ConnectionResetError:
                pass  # we closed with unread input: the kernel may send RST
            self.assertLess(n, 50)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
