"""End-to-end tests of imapd with Python's imaplib (and raw sockets where
imaplib cannot say what we need: IDLE, oversized literals).

Each test uses its own user so the tests do not depend on one another.
"""

import imaplib
import os
import re
import smtplib
import socket
import ssl
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
         "xavier"]


def pw(user):
    return "pw-" + user


def untagged(m, name):
    """The data of imaplib's untagged responses of that name (and clear them)."""
    return m.response(name)[1]


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A line-level IMAP client on a socket, for what imaplib hides."""

    def __init__(self, host, port, timeout=20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until_tagged(self, tag):
        """Lines up to and including the tagged reply to tag."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.until_tagged(tag)

    def closed(self, timeout=10):
        """True once the server has closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


class ImapdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(domain=DOMAIN, params={"imapd_auth_failure_delay": "0",
                                                 "imapd_user_connection_limit": "3",
                                                 "imapd_max_literal_size": "4k",
                                                 "imapd_max_append_size": "1m"})
        for u in USERS:
            cls.sb.user_add(u, pw(u))
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # --- helpers --------------------------------------------------------
    def connect(self):
        m = imaplib.IMAP4(self.sb.host, self.sb.port("imap"), timeout=30)
        self.addCleanup(self._shutdown, m)
        return m

    @staticmethod
    def _shutdown(m):
        try:
            m.logout()
        except Exception:
            pass

    def login(self, user):
        m = self.connect()
        typ, _ = m.login(user, pw(user))
        self.assertEqual(typ, "OK")
        return m

    def raw(self, port_name="imap"):
        r = Raw(self.sb.host, self.sb.port(port_name))
        self.addCleanup(r.close)
        return r

    def raw_login(self, user):
        r = self.raw()
        lines = r.cmd("L", 'LOGIN %s "%s"' % (user, pw(user)))
        self.assertTrue(lines[-1].startswith(b"L OK"), lines)
        return r

    def deliver(self, user, subject, body="hello\r\n"):
        msg = ("From: sender@%s\r\nTo: %s@%s\r\nSubject: %s\r\n\r\n%s"
               % (DOMAIN, user, DOMAIN, subject, body))
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.sendmail("sender@" + DOMAIN, [user + "@" + DOMAIN], msg.encode())

    def append(self, m, folder, data, flags=None):
        typ, resp = m.append(folder, flags, None, data)
        self.assertEqual(typ, "OK", resp)
        match = re.search(rb"\[APPENDUID (\d+) (\d+)\]", resp[0])
        self.assertIsNotNone(match, resp)
        return int(match.group(1)), int(match.group(2))

    def select_info(self, m, folder="INBOX", readonly=False):
        typ, data = m.select(folder, readonly=readonly)
        self.assertEqual(typ, "OK", data)
        m.response("EXISTS")  # forget the SELECT's own untagged responses
        m.response("FETCH")
        return int(data[0])

    # --- login ----------------------------------------------------------
    def test_login_with_right_password_succeeds(self):
        m = self.connect()
        self.assertIn(b"IMAP4rev1", m.welcome)
        typ, data = m.login("alice", pw("alice"))
        self.assertEqual(typ, "OK")
        self.assertIn(b"CAPABILITY", data[0])
        self.assertIn(b"UIDPLUS", data[0])

    def test_login_with_wrong_password_fails(self):
        m = self.connect()
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login("alice", "wrong")
        self.assertIn("AUTHENTICATIONFAILED", str(cm.exception))
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("nosuchuser", "x")
        self.sb.expect_log_text("authentication failed: user=alice")

    def test_authenticate_plain_with_and_without_initial_response(self):
        m = self.connect()
        typ, _ = m.authenticate("PLAIN", lambda _: b"\0bob\0" + pw("bob").encode())
        self.assertEqual(typ, "OK")
        r = self.raw()
        import base64
        ir = base64.b64encode(b"\0bob\0" + pw("bob").encode()).decode()
        lines = r.cmd("A", "AUTHENTICATE PLAIN " + ir)
        self.assertTrue(lines[-1].startswith(b"A OK"), lines)

    def test_too_many_failed_logins_end_the_session(self):
        r = self.raw()
        for i in range(3):
            r.send("a%d LOGIN alice wrong\r\n" % i)
            lines = r.until_tagged("a%d" % i)
            self.assertTrue(lines[-1].startswith(b"a%d NO [AUTHENTICATIONFAILED]" % i), lines)
        self.assertTrue(r.line().startswith(b"* BYE"))
        self.assertTrue(r.closed())

    def test_too_many_bad_commands_end_the_session(self):
        r = self.raw()
        for i in range(19):
            lines = r.cmd("b%d" % i, "NONSENSE")
            self.assertTrue(lines[-1].startswith(b"b%d BAD" % i), lines)
        r.send("last NONSENSE\r\n")
        self.assertTrue(r.line().startswith(b"last BAD"))
        self.assertTrue(r.line().startswith(b"* BYE"))
        self.assertTrue(r.closed())
        self.sb.expect_log_text("too many invalid commands")

    def test_commands_need_the_right_state(self):
        r = self.raw()
        lines = r.cmd("a", "SELECT INBOX")
        self.assertTrue(lines[-1].startswith(b"a BAD"), lines)
        lines = r.cmd("b", "FETCH 1 FLAGS")
        self.assertTrue(lines[-1].startswith(b"b BAD"), lines)
        lines = r.cmd("c", "BLURB")
        self.assertTrue(lines[-1].startswith(b"c BAD"), lines)
        r.cmd("L", 'LOGIN carol "%s"' % pw("carol"))
        lines = r.cmd("d", "LOGIN carol x")
        self.assertTrue(lines[-1].startswith(b"d BAD"), lines)
        lines = r.cmd("e", "EXPUNGE")
        self.assertTrue(lines[-1].startswith(b"e BAD"), lines)

    def test_capability_noop_id_enable_namespace(self):
        m = self.login("dave")
        typ, data = m.capability()
        caps = data[0].split()
        for c in (b"IMAP4rev1", b"IMAP4rev2", b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE",
                  b"SPECIAL-USE", b"CONDSTORE", b"QRESYNC", b"ENABLE", b"LITERAL+"):
            self.assertIn(c, caps)
        self.assertEqual(m.noop()[0], "OK")
        typ, data = m.xatom("ID", '("name" "imaplib")')
        self.assertEqual(typ, "OK")
        self.assertIn(b'"tegami"', untagged(m, "ID")[0])
        typ, data = m.xatom("ENABLE", "CONDSTORE")
        self.assertEqual(typ, "OK")
        self.assertEqual(untagged(m, "ENABLED"), [b"CONDSTORE"])
        typ, data = m.namespace()
        self.assertEqual(data[0], b'(("" ".")) NIL NIL')

    def test_starttls_then_login(self):
        m = self.connect()
        self.assertIn("STARTTLS", m.capabilities)
        m.starttls(ssl_context=no_verify())
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertEqual(m.login("erin", pw("erin"))[0], "OK")
        self.sb.expect_log_text("TLS connection established")

    def test_implicit_tls_on_993(self):
        m = imaplib.IMAP4_SSL(self.sb.host, self.sb.port("imaps"), ssl_context=no_verify(),
                              timeout=30)
        self.addCleanup(self._shutdown, m)
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertEqual(m.login("erin", pw("erin"))[0], "OK")

    def test_starttls_discards_pipelined_commands(self):
        r = self.raw()
        r.send("S STARTTLS\r\nX LOGIN frank %s\r\n" % pw("frank"))
        lines = r.until_tagged("S")
        self.assertTrue(lines[-1].startswith(b"S OK"), lines)
        tls = no_verify().wrap_socket(r.sock, server_hostname="localhost")
        tls.settimeout(5)
        tls.sendall(b"N NOOP\r\n")
        got = b""
        while b"N OK" not in got:
            chunk = tls.recv(4096)
            if not chunk:
                break
            got += chunk
        self.assertNotIn(b"X OK", got)
        self.assertNotIn(b"X NO", got)
        self.assertIn(b"N OK", got)
        tls.close()

    def test_connections_per_user_are_limited(self):
        sessions = [self.login("grace") for _ in range(3)]
        m = self.connect()
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login("grace", pw("grace"))
        self.assertIn("LIMIT", str(cm.exception))
        sessions[0].logout()
        deadline = time.time() + 10
        while True:  # the slot is free once that process has ended the session
            m = self.connect()
            try:
                m.login("grace", pw("grace"))
                break
            except imaplib.IMAP4.error:
                self.assertLess(time.time(), deadline, "slot not released")
                time.sleep(0.2)

    # --- folders --------------------------------------------------------
    def test_default_special_use_folders_exist_after_login(self):
        m = self.login("heidi")
        typ, data = m.list()
        self.assertEqual(typ, "OK")
        text = b"\n".join(data)
        for name, attr in ((b"Sent", b"\\Sent"), (b"Drafts", b"\\Drafts"),
                           (b"Trash", b"\\Trash"), (b"Junk", b"\\Junk")):
            self.assertRegex(text, re.escape(attr) + rb'[^\n]*"\." "?' + name)
        self.assertIn(b"INBOX", text)
        typ, data = m.lsub()
        self.assertIn(b"Sent", b"\n".join(data))
        typ, data = m.list('""', "%")
        self.assertEqual(len(data), 5, data)
        typ, data = m.xatom("LIST", '(SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)')
        self.assertEqual(typ, "OK")
        lines = untagged(m, "LIST")
        self.assertEqual(len(lines), 4, lines)

    def test_create_rename_delete_non_ascii_folders(self):
        m = self.login("ivan")
        entwuerfe = "Entw&APw-rfe"          # "Entwürfe" in modified UTF-7
        russian = "&BB8EQAQ4BDIENQRC-"      # "Привет"
        self.assertEqual(m.create(entwuerfe)[0], "OK")
        self.assertTrue(os.path.isdir(os.path.join(self.sb.maildir("ivan"), "." + entwuerfe)))
        typ, data = m.list('""', "Entw*")
        self.assertIn(entwuerfe.encode(), data[0])
        self.assertEqual(m.create(entwuerfe + ".Kind")[0], "OK")
        typ, data = m.list('""', entwuerfe)
        self.assertIn(b"\\HasChildren", data[0])
        self.assertEqual(m.rename(entwuerfe, russian)[0], "OK")
        typ, data = m.list('""', "*")
        text = b"\n".join(data)
        self.assertIn(russian.encode() + b".Kind", text)
        self.assertNotIn(entwuerfe.encode(), text)
        self.assertEqual(m.create(russian)[0], "NO")  # ALREADYEXISTS
        self.assertEqual(m.delete(russian + ".Kind")[0], "OK")
        self.assertEqual(m.delete(russian)[0], "OK")
        self.assertEqual(m.delete(russian)[0], "NO")
        # Names that are not valid modified UTF-7 are refused.
        self.assertEqual(m.create("bad&name")[0], "NO")

    def test_rename_inbox_moves_its_messages(self):
        m = self.login("xavier")
        self.append(m, "INBOX", b"Subject: old\r\n\r\nold\r\n")
        self.assertEqual(m.rename("INBOX", "Old-Inbox")[0], "OK")
        typ, data = m.status("INBOX", "(MESSAGES)")
        self.assertIn(b"MESSAGES 0", data[0])
        typ, data = m.status("Old-Inbox", "(MESSAGES)")
        self.assertIn(b"MESSAGES 1", data[0])
        self.assertEqual(m.delete("INBOX")[0], "NO")

    def test_utf8_names_after_enable_utf8_accept(self):
        r = self.raw_login("judy")
        lines = r.cmd("e", "ENABLE UTF8=ACCEPT")
        self.assertIn(b"* ENABLED UTF8=ACCEPT", lines)
        lines = r.cmd("c", 'CREATE "Entwürfe"')
        self.assertTrue(lines[-1].startswith(b"c OK"), lines)
        lines = r.cmd("l", 'LIST "" "Entw*"')
        self.assertIn('"Entwürfe"'.encode(), lines[0])
        self.assertTrue(os.path.isdir(os.path.join(self.sb.maildir("judy"), ".Entw&APw-rfe")))

    def test_folder_names_that_leave_the_maildir_are_refused(self):
        m = self.login("mallory")
        before = set(os.listdir(os.path.join(self.sb.dir, "mail")))
        for name in ("..", "../x", "a..b", "/tmp/evil", "a/b", ".hidden", "..x",
                     "../../alice/Maildir", "INBOX/../../alice"):
            typ, data = m.create(name)
            self.assertEqual(typ, "NO", (name, data))
            typ, data = m.select(name)
            self.assertEqual(typ, "NO", (name, data))
            typ, data = m.rename("Sent", name)
            self.assertEqual(typ, "NO", (name, data))
        self.assertEqual(set(os.listdir(os.path.join(self.sb.dir, "mail"))), before)
        self.assertFalse(os.path.exists("/tmp/evil"))

    def test_one_user_cannot_open_another_users_folders(self):
        a = self.login("niaj")
        self.append(a, "INBOX", b"Subject: secret\r\n\r\nniaj only\r\n")
        self.assertEqual(a.create("Private")[0], "OK")
        b = self.login("olivia")
        for name in ("../../niaj/Maildir", "../niaj", "niaj", "~niaj", "/" + self.sb.maildir("niaj"),
                     "#users.niaj", "Private"):
            self.assertEqual(b.select(name)[0], "NO", name)
            self.assertEqual(b.status(name, "(MESSAGES)")[0], "NO", name)
        typ, data = b.list('""', "*")
        self.assertNotIn(b"Private", b"\n".join(data))
        self.assertEqual(self.select_info(b), 0)

    def test_subscribe_and_lsub(self):
        m = self.login("peggy")
        self.assertEqual(m.create("Lists")[0], "OK")
        self.assertEqual(m.subscribe("Lists")[0], "OK")
        typ, data = m.lsub('""', "L*")
        self.assertEqual(len(data), 1)
        self.assertIn(b"Lists", data[0])
        typ, data = m.xatom("LIST", '"" "Lists" RETURN (SUBSCRIBED CHILDREN)')
        self.assertIn(b"\\Subscribed", untagged(m, "LIST")[0])
        typ, data = m.xatom("LIST", '(SUBSCRIBED) "" "*"')
        names = untagged(m, "LIST")
        self.assertTrue(all(b"\\Subscribed" in n for n in names), names)
        self.assertTrue(any(n.endswith(b" Lists") for n in names), names)
        self.assertEqual(m.unsubscribe("Lists")[0], "OK")
        typ, data = m.lsub('""', "L*")
        self.assertEqual(data, [None])

    def test_status_items(self):
        m = self.login("rupert")
        self.append(m, "INBOX", b"Subject: a\r\n\r\none\r\n", r"(\Seen)")
        self.append(m, "INBOX", b"Subject: b\r\n\r\ntwo\r\n")
        typ, data = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY HIGHESTMODSEQ SIZE)")
        self.assertEqual(typ, "OK")
        text = data[0].decode()
        self.assertIn("MESSAGES 2", text)
        self.assertIn("UNSEEN 1", text)
        self.assertIn("UIDNEXT 3", text)
        self.assertRegex(text, r"UIDVALIDITY \d+")
        self.assertRegex(text, r"HIGHESTMODSEQ \d+")
        size = len(b"Subject: a\r\n\r\none\r\n") + len(b"Subject: b\r\n\r\ntwo\r\n")
        self.assertIn("SIZE %d" % size, text)
        self.assertEqual(m.status("Nonexistent", "(MESSAGES)")[0], "NO")
        # RFC 5819 LIST-STATUS: the same numbers after each LIST line.
        typ, data = m.xatom("LIST", '"" "INBOX" RETURN (STATUS (MESSAGES UNSEEN))')
        self.assertEqual(typ, "OK", data)
        self.assertEqual(untagged(m, "STATUS"), [b"INBOX (MESSAGES 2 UNSEEN 1)"])
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.status("INBOX", "(BOGUS)")
        self.assertIn("BAD", str(cm.exception))

    # --- select, append -------------------------------------------------
    def test_select_and_examine_responses(self):
        m = self.login("sybil")
        self.append(m, "INBOX", b"Subject: x\r\n\r\nx\r\n")
        r = self.raw_login("sybil")
        lines = r.cmd("s", "SELECT INBOX")
        text = b"\n".join(lines)
        self.assertIn(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft", text)
        self.assertIn(b"* OK [PERMANENTFLAGS (", text)
        self.assertIn(b"* 1 EXISTS", text)
        self.assertRegex(text, rb"\* \d+ RECENT")
        self.assertRegex(text, rb"\* OK \[UIDVALIDITY \d+\]")
        self.assertIn(b"* OK [UIDNEXT 2]", text)
        self.assertIn(b"* OK [UNSEEN 1]", text)
        self.assertRegex(text, rb"\* OK \[HIGHESTMODSEQ \d+\]")
        self.assertTrue(lines[-1].startswith(b"s OK [READ-WRITE]"), lines)
        lines = r.cmd("e", "EXAMINE INBOX")
        self.assertIn(b"* OK [CLOSED]", b"\n".join(lines))
        self.assertIn(b"* OK [PERMANENTFLAGS ()]", b"\n".join(lines))
        self.assertTrue(lines[-1].startswith(b"e OK [READ-ONLY]"), lines)
        lines = r.cmd("x", "EXPUNGE")
        self.assertTrue(lines[-1].startswith(b"x NO"), lines)
        lines = r.cmd("u", "UNSELECT")
        self.assertTrue(lines[-1].startswith(b"u OK"), lines)
        lines = r.cmd("n", "SELECT Nonexistent")
        self.assertTrue(lines[-1].startswith(b"n NO [NONEXISTENT]"), lines)

    def test_append_returns_appenduid_and_content_round_trips(self):
        m = self.login("trent")
        body = (b"From: a@example.test\r\nTo: trent@example.test\r\nSubject: round trip\r\n"
                b"MIME-Version: 1.0\r\n\r\nline one\r\n\r\n.line with dot\r\nlast\r\n")
        v1, uid1 = self.append(m, "INBOX", body, r"(\Seen \Flagged $Label1)")
        v2, uid2 = self.append(m, "INBOX", body)
        self.assertEqual(v1, v2)
        self.assertEqual(uid2, uid1 + 1)
        m.select("INBOX")
        typ, data = m.uid("FETCH", str(uid1), "(FLAGS BODY.PEEK[])")
        self.assertEqual(typ, "OK", data)
        self.assertEqual(data[0][1], body)
        self.assertIn(b"\\Seen", data[0][0])
        self.assertIn(b"$Label1", data[0][0])
        # TRYCREATE for a folder that does not exist.
        typ, data = m.append("Nowhere", None, None, body)
        self.assertEqual(typ, "NO")
        self.assertIn(b"TRYCREATE", data[0])
        # A date-time is kept as the internal date.
        typ, data = m.append("INBOX", None, '"17-Jul-1996 02:44:25 -0700"', body)
        self.assertEqual(typ, "OK", data)

    def test_huge_literal_is_refused_before_it_is_read(self):
        r = self.raw_login("victor")
        r.send("a APPEND INBOX {999999999}\r\n")
        ln = r.line()
        self.assertTrue(ln.startswith(b"a NO [TOOBIG]"), ln)
        r.send("b LOGIN {100000}\r\n")
        ln = r.line()
        self.assertTrue(ln.startswith(b"b BAD"), ln)
        lines = r.cmd("c", "NOOP")
        self.assertTrue(lines[-1].startswith(b"c OK"), lines)
        # A non-synchronising literal cannot be refused: BYE.
        r.send("d APPEND INBOX {999999999+}\r\n")
        ln = r.line()
        self.assertTrue(ln.startswith(b"* BYE"), ln)
        self.assertTrue(r.closed())
        self.sb.expect_log_text("literal of 999999999 bytes refused")
        # Before login even APPEND gets the small literal bound.
        r = self.raw()
        r.send("p APPEND INBOX {100000}\r\n")
        ln = r.line()
        self.assertTrue(ln.startswith(b"p BAD"), ln)

    def test_literal_plus_and_synchronising_literal_append(self):
        r = self.raw_login("walter")
        msg = b"Subject: lit\r\n\r\nbody\r\n"
        r.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg))
        lines = r.until_tagged("a")
        self.assertTrue(lines[-1].startswith(b"a OK [APPENDUID"), lines)
        r.send(b"b APPEND INBOX (\\Seen) {%d}\r\n" % len(msg))
        self.assertTrue(r.line().startswith(b"+"))
        r.send(msg + b"\r\n")
        lines = r.until_tagged("b")
        self.assertTrue(lines[-1].startswith(b"b OK [APPENDUID"), lines)

    def test_append_utf8_data_extension(self):
        r = self.raw_login("walter")
        msg = "Subject: Grüße\r\n\r\nüber\r\n".encode()
        r.send(b"u APPEND INBOX UTF8 (~{%d+}\r\n%s)\r\n" % (len(msg), msg))
        lines = r.until_tagged("u")
        self.assertTrue(lines[-1].startswith(b"u OK [APPENDUID"), lines)

    def test_long_line_and_deep_nesting_get_bad(self):
        r = self.raw_login("walter")
        lines = r.cmd("a", "STATUS INBOX " + "(" * 50 + ")" * 50)
        self.assertTrue(lines[-1].startswith(b"a BAD"), lines)
        r.send("b NOOP " + "x" * 70000 + "\r\n")
        lines = r.until_tagged("b")
        self.assertTrue(lines[-1].startswith(b"b BAD"), lines)
        lines = r.cmd("c", "NOOP")
        self.assertTrue(lines[-1].startswith(b"c OK"), lines)

    # --- concurrency ----------------------------------------------------
    def test_idle_sees_a_message_delivered_over_smtp(self):
        r = self.raw_login("bob")
        r.cmd("s", "SELECT INBOX")
        r.send("i IDLE\r\n")
        self.assertTrue(r.line().startswith(b"+"))
        self.deliver("bob", "idle wakeup")
        r.sock.settimeout(20)
        ln = r.line()
        self.assertRegex(ln, rb"^\* \d+ EXISTS$")
        r.send("DONE\r\n")
        lines = r.until_tagged("i")
        self.assertTrue(lines[-1].startswith(b"i OK"), lines)

    def test_idle_sees_other_sessions_expunge_and_flags(self):
        a = self.login("carol")
        self.append(a, "INBOX", b"Subject: 1\r\n\r\none\r\n")
        self.append(a, "INBOX", b"Subject: 2\r\n\r\ntwo\r\n", r"(\Deleted)")
        n = self.select_info(a)
        r = self.raw_login("carol")
        lines = r.cmd("s", "SELECT INBOX")
        self.assertIn(b"* %d EXISTS" % n, lines)
        r.send("i IDLE\r\n")
        self.assertTrue(r.line().startswith(b"+"))
        self.assertEqual(a.expunge()[0], "OK")
        r.sock.settimeout(20)
        self.assertEqual(r.line(), b"* %d EXPUNGE" % n)
        typ, data = a.store("1", "+FLAGS", r"(\Flagged)")
        self.assertEqual(typ, "OK", data)
        ln = r.line()
        self.assertRegex(ln, rb"^\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged")
        r.send("DONE\r\n")
        self.assertTrue(r.until_tagged("i")[-1].startswith(b"i OK"))

    def test_two_sessions_see_each_others_changes_on_noop(self):
        a = self.login("frank")
        b = self.login("frank")
        self.append(a, "INBOX", b"Subject: 1\r\n\r\none\r\n")
        self.select_info(a)
        nb = self.select_info(b)
        self.append(a, "INBOX", b"Subject: 2\r\n\r\ntwo\r\n", r"(\Deleted)")
        b.noop()
        self.assertEqual(untagged(b, "EXISTS"), [str(nb + 1).encode()])
        a.noop()
        self.assertEqual(a.expunge()[0], "OK")
        b.noop()
        self.assertEqual(untagged(b, "EXPUNGE"), [str(nb + 1).encode()])
        typ, data = a.store("1", "+FLAGS", r"(\Answered)")
        self.assertEqual(typ, "OK", data)
        b.noop()
        fetches = untagged(b, "FETCH")
        self.assertTrue(any(b"\\Answered" in f for f in fetches if isinstance(f, bytes)), fetches)

    def test_uids_and_uidvalidity_survive_restart_and_index_rebuild(self):
        m = self.login("dave")
        self.assertEqual(m.create("Keep")[0], "OK")
        v, u1 = self.append(m, "Keep", b"Subject: k1\r\n\r\n1\r\n")
        _, u2 = self.append(m, "Keep", b"Subject: k2\r\n\r\n2\r\n")
        _, u3 = self.append(m, "Keep", b"Subject: k3\r\n\r\n3\r\n")
        m.select("Keep")
        m.store("2", "+FLAGS", r"(\Deleted)")
        m.expunge()
        m.logout()
        self.sb.stop()
        self.sb.start()
        for rebuild in (False, True):
            if rebuild:
                os.unlink(os.path.join(self.sb.maildir("dave"), ".Keep", "tegami-index.db"))
            m = self.login("dave")
            typ, data = m.status("Keep", "(UIDVALIDITY UIDNEXT MESSAGES)")
            text = data[0].decode()
            self.assertIn("UIDVALIDITY %d" % v, text, "rebuild=%s" % rebuild)
            uidnext = int(re.search(r"UIDNEXT (\d+)", text).group(1))
            if rebuild:  # a rebuilt index may skip UIDs, never reuse one
                self.assertGreater(uidnext, u3, text)
            else:
                self.assertEqual(uidnext, u3 + 1, text)
            self.assertIn("MESSAGES 2", text)
            m.select("Keep")
            typ, data = m.uid("SEARCH", None, "ALL")
            self.assertEqual(typ, "OK", data)
            self.assertEqual(data[0].split(), [str(u1).encode(), str(u3).encode()])
            m.logout()


class ImapdPlaintextTest(unittest.TestCase):
    """imapd_plaintext_auth_loopback = no: loopback is treated like any network."""

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(domain=DOMAIN, params={"imapd_auth_failure_delay": "0",
                                                 "imapd_plaintext_auth_loopback": "no",
                                                 "imapd_preauth_timeout": "5s"})
        cls.sb.user_add("alice", pw("alice"))
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def test_logindisabled_until_tls(self):
        m = imaplib.IMAP4(self.sb.host, self.sb.port("imap"), timeout=30)
        self.addCleanup(m.shutdown)
        self.assertIn("LOGINDISABLED", m.capabilities)
        self.assertNotIn("AUTH=PLAIN", m.capabilities)
        typ, data = m._simple_command("LOGIN", "alice", pw("alice"))
        self.assertEqual(typ, "NO")
        self.assertIn("PRIVACYREQUIRED", str(data))
        m.starttls(ssl_context=no_verify())
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.assertEqual(m.login("alice", pw("alice"))[0], "OK")

    def test_silent_client_before_login_gets_bye(self):
        r = Raw(self.sb.host, self.sb.port("imap"))
        self.addCleanup(r.close)
        start = time.time()
        r.sock.settimeout(20)
        self.assertTrue(r.line().startswith(b"* BYE"))
        self.assertTrue(r.closed())
        self.assertGreaterEqual(time.time() - start, 4)
        # A literal that never comes is bounded by the same timeout.
        r = Raw(self.sb.host, self.sb.port("imap"))
        self.addCleanup(r.close)
        r.send("a LOGIN {5}\r\n")
        self.assertTrue(r.line().startswith(b"+"))
        r.sock.settimeout(20)
        self.assertTrue(r.line().startswith(b"* BYE"))
        self.assertTrue(r.closed())

    def test_login_allowed_on_993(self):
        m = imaplib.IMAP4_SSL(self.sb.host, self.sb.port("imaps"), ssl_context=no_verify(),
                              timeout=30)
        self.addCleanup(m.shutdown)
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        self.assertEqual(m.login("alice", pw("alice"))[0], "OK")


if __name__ == "__main__":
    unittest.main()
