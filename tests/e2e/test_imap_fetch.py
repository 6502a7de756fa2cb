"""End-to-end tests of imapd's message commands with Python's imaplib:
FETCH (sections, partial, BINARY, ENVELOPE, BODYSTRUCTURE), STORE (flags,
keywords, UNCHANGEDSINCE), SEARCH and ESEARCH, COPY/MOVE with COPYUID,
UID EXPUNGE, and the CONDSTORE/QRESYNC parts (CHANGEDSINCE, VANISHED).

Each test uses its own user, so tests do not depend on one another.
"""

import imaplib
import os
import re
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"
USERS = ["u%d" % i for i in range(1, 17)]

SIMPLE = (b"From: Alice Example <alice@example.test>\r\n"
          b"To: bob@example.test\r\n"
          b"Subject: plain one\r\n"
          b"Date: Fri, 01 Mar 2024 10:00:00 +0100\r\n"
          b"Message-ID: <simple-1@example.test>\r\n"
          b"\r\n"
          b"Hello world,\r\n"
          b"this is line two.\r\n")


def nested_message():
    """A multipart/mixed holding a multipart/alternative, a base64
    attachment and a message/rfc822; returns (bytes, parts) where parts
    are the raw bodies whose sizes the expected BODYSTRUCTURE uses."""
    plain = b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n"
    html = b"<p>Hi</p>\r\n"
    data = b"AAECAwQF\r\n"
    inner_body = b"inner body\r\n"
    inner = (b"From: x@example.test\r\n"
             b"Subject: inner message\r\n"
             b"\r\n" + inner_body)
    msg = (b"From: \"Alice Example\" <alice@example.test>\r\n"
           b"To: bob@example.test, \"Carol\" <carol@example.test>\r\n"
           b"Subject: Nested test\r\n"
           b"Date: Fri, 01 Mar 2024 10:00:00 +0100\r\n"
           b"Message-ID: <nested-1@example.test>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
           b"\r\n"
           b"preamble\r\n"
           b"--outer\r\n"
           b"Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
           b"\r\n"
           b"--inner\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n"
           b"\r\n" + plain + b"\r\n"
           b"--inner\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n"
           b"\r\n" + html + b"\r\n"
           b"--inner--\r\n"
           b"\r\n"
           b"--outer\r\n"
           b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
           b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n"
           b"\r\n" + data + b"\r\n"
           b"--outer\r\n"
           b"Content-Type: message/rfc822\r\n"
           b"\r\n" + inner + b"\r\n"
           b"--outer--\r\n")
    return msg, dict(plain=plain, html=html, data=data, inner=inner, inner_body=inner_body)


def lines(b):
    return b.count(b"\n")


def fetch_literal(resp):
    """The literal of the first FETCH response in an imaplib fetch() result."""
    for item in resp:
        if isinstance(item, tuple):
            return item[1]
    raise AssertionError("no literal in %r" % (resp,))


def fetch_text(resp):
    """All of a fetch() result as one byte string (literals inlined)."""
    out = b""
    for item in resp:
        if isinstance(item, tuple):
            out += item[0] + item[1]
        elif item is not None:
            out += item
    return out


class ImapFetchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(domain=DOMAIN, params={"imapd_auth_failure_delay": "0"})
        for u in USERS:
            cls.sb.user_add(u, "pw-" + u)
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def connect(self, user):
        c = imaplib.IMAP4(self.sb.host, self.sb.port("imap"), timeout=30)
        self.addCleanup(self._logout, c)
        typ, _ = c.login(user, "pw-" + user)
        self.assertEqual(typ, "OK")
        return c

    @staticmethod
    def _logout(c):
        try:
            c.logout()
        except Exception:
            pass

    def append(self, c, msg, folder="INBOX", flags=None, date=None):
        typ, data = c.append(folder, flags, date, msg)
        self.assertEqual(typ, "OK", data)
        m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
        self.assertIsNotNone(m, data)
        return int(m.group(2))

    def ok(self, res):
        typ, data = res
        self.assertEqual(typ, "OK", data)
        return data

    # --- FETCH -----------------------------------------------------------
    def test_append_then_fetch_is_byte_exact(self):
        c = self.connect("u1")
        msg, _ = nested_message()
        self.append(c, SIMPLE)
        self.append(c, msg)
        self.ok(c.select("INBOX"))
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[])"))), SIMPLE)
        self.assertEqual(fetch_literal(self.ok(c.fetch("2", "(BODY.PEEK[])"))), msg)
        self.assertEqual(fetch_literal(self.ok(c.fetch("2", "(RFC822)"))), msg)
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[]<0.10>)"))), SIMPLE[:10])
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[]<5.17>)"))),
                         SIMPLE[5:22])
        # an offset beyond the end gives an empty string
        data = fetch_text(self.ok(c.fetch("1", "(BODY.PEEK[]<100000.10>)")))
        self.assertIn(b"BODY[]<100000> {0}", data)
        # RFC822.SIZE counts CRLF octets, equal to what came back
        data = fetch_text(self.ok(c.fetch("2", "(RFC822.SIZE)")))
        self.assertIn(b"RFC822.SIZE %d" % len(msg), data)
        header, body = SIMPLE.split(b"\r\n\r\n", 1)
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[HEADER])"))),
                         header + b"\r\n\r\n")
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[TEXT])"))), body)
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(RFC822.TEXT)"))), body)
        self.assertEqual(
            fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (Subject To)])"))),
            b"To: bob@example.test\r\nSubject: plain one\r\n\r\n")
        got = fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (Subject To)])")))
        self.assertNotIn(b"Subject:", got)
        self.assertIn(b"Message-ID: <simple-1@example.test>\r\n", got)

    def test_large_message_round_trip(self):
        c = self.connect("u14")
        body = b"".join(b"line %06d \xc3\xa4\xc3\xb6 " % i + b"y" * (i % 300) + b"\r\n"
                        for i in range(3000))
        msg = (b"From: big@example.test\r\nSubject: big\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body)
        uid = self.append(c, msg)
        self.ok(c.select("INBOX"))
        got = fetch_literal(self.ok(c.uid("FETCH", str(uid), "(BODY.PEEK[])")))
        self.assertEqual(len(got), len(msg))
        self.assertEqual(got, msg)
        got = fetch_literal(self.ok(c.uid("FETCH", str(uid), "(BODY.PEEK[]<100000.50000>)")))
        self.assertEqual(got, msg[100000:150000])
        got = fetch_literal(self.ok(c.uid("FETCH", str(uid), "(BINARY.PEEK[1])")))
        self.assertEqual(got, body)
        data = fetch_text(self.ok(c.uid("FETCH", str(uid), "(RFC822.SIZE)")))
        self.assertIn(b"RFC822.SIZE %d" % len(msg), data)

    def test_sections_of_a_nested_multipart(self):
        c = self.connect("u2")
        msg, parts = nested_message()
        self.append(c, msg)
        self.ok(c.select("INBOX"))
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[1.1])"))),
                         parts["plain"])
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[1.2])"))), parts["html"])
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[2])"))), parts["data"])
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[3])"))), parts["inner"])
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[3.TEXT])"))),
                         parts["inner_body"])
        self.assertEqual(
            fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[3.HEADER.FIELDS (SUBJECT)])"))),
            b"Subject: inner message\r\n\r\n")
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BODY.PEEK[1.1.MIME])"))),
                         b"Content-Type: text/plain; charset=utf-8\r\n"
                         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        # BINARY decodes the transfer encoding (RFC 3516)
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BINARY.PEEK[2])"))),
                         bytes([0, 1, 2, 3, 4, 5]))
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BINARY.PEEK[1.1])"))),
                         "Grüße aus Köln\r\n".encode())
        self.assertEqual(fetch_literal(self.ok(c.fetch("1", "(BINARY.PEEK[2]<2.3>)"))),
                         bytes([2, 3, 4]))
        data = fetch_text(self.ok(c.fetch("1", "(BINARY.SIZE[2] BINARY.SIZE[1.1])")))
        self.assertIn(b"BINARY.SIZE[2] 6", data)
        self.assertIn(b"BINARY.SIZE[1.1] %d" % len("Grüße aus Köln\r\n".encode()), data)
        # a part that does not exist
        data = fetch_text(self.ok(c.fetch("1", "(BODY.PEEK[9])")))
        self.assertIn(b"BODY[9] NIL", data)
        # nothing above set \Seen
        self.assertNotIn(b"\\Seen", fetch_text(self.ok(c.fetch("1", "(FLAGS)"))))
        # an encoding BINARY cannot undo: NO [UNKNOWN-CTE] (RFC 3516 §4.2)
        self.append(c, b"Subject: x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n")
        self.ok(c.noop())
        typ, data = c.fetch("2", "(BINARY.PEEK[1])")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[UNKNOWN-CTE]", data[0])

    def test_bodystructure_and_envelope_of_nested_multipart(self):
        c = self.connect("u3")
        msg, p = nested_message()
        self.append(c, msg)
        self.ok(c.select("INBOX"))
        inner_env = (b'(NIL "inner message" ((NIL NIL "x" "example.test")) '
                     b'((NIL NIL "x" "example.test")) ((NIL NIL "x" "example.test")) '
                     b'NIL NIL NIL NIL NIL)')
        # RFC 3501 §7.4.2, written out by hand for nested_message()
        alt = (b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" %d %d '
               b'NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "7bit" %d %d '
               b'NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)'
               % (len(p["plain"]), lines(p["plain"]), len(p["html"]), lines(p["html"])))
        app = (b'("application" "octet-stream" ("name" "data.bin") NIL NIL "base64" %d NIL '
               b'("attachment" ("filename" "data.bin")) NIL NIL)' % len(p["data"]))
        rfc822 = (b'("message" "rfc822" NIL NIL NIL "7bit" %d %s '
                  b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d NIL NIL NIL NIL) '
                  b'%d NIL NIL NIL NIL)'
                  % (len(p["inner"]), inner_env, len(p["inner_body"]), lines(p["inner_body"]),
                     lines(p["inner"])))
        expected_bs = b'(' + alt + app + rfc822 + b' "mixed" ("boundary" "outer") NIL NIL NIL)'
        expected_env = (b'("Fri, 01 Mar 2024 10:00:00 +0100" "Nested test" '
                        b'(("Alice Example" NIL "alice" "example.test")) '
                        b'(("Alice Example" NIL "alice" "example.test")) '
                        b'(("Alice Example" NIL "alice" "example.test")) '
                        b'((NIL NIL "bob" "example.test")("Carol" NIL "carol" "example.test")) '
                        b'NIL NIL NIL "<nested-1@example.test>")')
        for _ in range(2):  # the second time from the index cache
            data = fetch_text(self.ok(c.fetch("1", "(BODYSTRUCTURE)")))
            self.assertEqual(data, b"1 (BODYSTRUCTURE " + expected_bs + b")")
            data = fetch_text(self.ok(c.fetch("1", "(ENVELOPE)")))
            self.assertEqual(data, b"1 (ENVELOPE " + expected_env + b")")
        # BODY is BODYSTRUCTURE without extension data
        data = fetch_text(self.ok(c.fetch("1", "(BODY)")))
        prefix = (b'1 (BODY ((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" %d %d)'
                  % (len(p["plain"]), lines(p["plain"])))
        self.assertTrue(data.startswith(prefix), data)

    def test_fetch_without_peek_sets_seen_and_reports_it(self):
        c = self.connect("u4")
        self.append(c, SIMPLE)
        self.ok(c.select("INBOX"))
        data = fetch_text(self.ok(c.fetch("1", "(BODY[TEXT])")))
        self.assertRegex(data, rb"FLAGS \([^)]*\\Seen")
        data = fetch_text(self.ok(c.uid("FETCH", "1", "(RFC822.SIZE)")))
        self.assertIn(b"UID 1", data)  # UID always in UID FETCH replies
        # INTERNALDATE: the APPEND date, as the same instant
        uid = self.append(c, SIMPLE, date='"01-Mar-2024 10:00:00 +0100"')
        data = fetch_text(self.ok(c.uid("FETCH", str(uid), "(INTERNALDATE)")))
        m = re.search(rb'INTERNALDATE ("\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}")', data)
        self.assertIsNotNone(m, data)
        self.assertEqual(time.mktime(imaplib.Internaldate2tuple(b"INTERNALDATE " + m.group(1))),
                         time.mktime(imaplib.Internaldate2tuple(
                             b'INTERNALDATE "01-Mar-2024 10:00:00 +0100"')))
        self.ok(c.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)"))
        self.ok(c.expunge())
        # EXAMINE: read-only, BODY[] does not set \Seen
        self.append(c, SIMPLE)
        self.ok(c.select("INBOX", readonly=True))
        self.ok(c.fetch("2", "(BODY[])"))
        self.assertNotIn(b"\\Seen", fetch_text(self.ok(c.fetch("2", "(FLAGS)"))))

    def test_bad_fetch_arguments_are_refused(self):
        c = self.connect("u5")
        self.append(c, SIMPLE)
        self.ok(c.select("INBOX"))
        for args in ("(FROGS)", "(BODY[1.])", "(BODY[HEADER.FIELDS ()])", "(BODY[]<0.0>)",
                     "(FLAGS", "FLAGS (VANISHED)"):
            with self.assertRaises(imaplib.IMAP4.error, msg=args):
                c.fetch("1", args)
        with self.assertRaises(imaplib.IMAP4.error):
            c.fetch("5", "(FLAGS)")  # beyond the last message
        # the session still works
        self.ok(c.fetch("1", "(FLAGS)"))

    # --- STORE -----------------------------------------------------------
    def test_store_flags_keywords_and_unchangedsince(self):
        c = self.connect("u6")
        self.append(c, SIMPLE)
        self.append(c, SIMPLE)
        self.ok(c.select("INBOX"))
        data = fetch_text(self.ok(c.store("1", "+FLAGS", "(\\Flagged $Work)")))
        self.assertIn(b"\\Flagged", data)
        self.assertIn(b"$Work", data)
        data = fetch_text(self.ok(c.store("1", "-FLAGS", "(\\Flagged)")))
        self.assertNotIn(b"\\Flagged", data)
        self.assertIn(b"$Work", data)
        data = fetch_text(self.ok(c.store("1", "FLAGS", "(\\Answered)")))
        self.assertIn(b"\\Answered", data)
        self.assertNotIn(b"$Work", data)
        # .SILENT: no untagged FETCH
        typ, data = c.store("2", "+FLAGS.SILENT", "(\\Deleted)")
        self.assertEqual(typ, "OK")
        self.assertEqual(data, [None])
        self.assertIn(b"\\Deleted", fetch_text(self.ok(c.fetch("2", "(FLAGS)"))))
        # keywords survive a new session and show in PERMANENTFLAGS' company (FLAGS)
        self.ok(c.store("1", "+FLAGS", "($Label1)"))
        c2 = self.connect("u6")
        typ, _ = c2.select("INBOX")
        self.assertIn(b"$Label1", fetch_text(self.ok(c2.fetch("1", "(FLAGS)"))))
        # UNCHANGEDSINCE (RFC 7162 §3.1.3)
        data = fetch_text(self.ok(c.fetch("1", "(MODSEQ)")))
        modseq = int(re.search(rb"MODSEQ \((\d+)\)", data).group(1))
        typ, data = c._simple_command("STORE", "1", "(UNCHANGEDSINCE %d)" % (modseq - 1),
                                      "+FLAGS", "(\\Seen)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"[MODIFIED 1]", data[0])
        self.assertNotIn(b"\\Seen", fetch_text(self.ok(c.fetch("1", "(FLAGS)"))))
        typ, data = c._simple_command("STORE", "1", "(UNCHANGEDSINCE %d)" % modseq,
                                      "+FLAGS", "(\\Seen)")
        self.assertEqual(typ, "OK")
        self.assertNotIn(b"MODIFIED", data[0])
        got = fetch_text(self.ok(c.fetch("1", "(FLAGS MODSEQ)")))
        self.assertIn(b"\\Seen", got)
        self.assertGreater(int(re.search(rb"MODSEQ \((\d+)\)", got).group(1)), modseq)
        # bad flags
        with self.assertRaises(imaplib.IMAP4.error):
            c.store("1", "+FLAGS", "(\\Recent)")
        with self.assertRaises(imaplib.IMAP4.error):
            c.store("1", "+FLOGS", "(\\Seen)")

    def test_other_sessions_see_store_and_move(self):
        a = self.connect("u15")
        for i in range(3):
            self.append(a, SIMPLE)
        self.ok(a.create("Elsewhere"))
        b = self.connect("u15")
        self.ok(a.select("INBOX"))
        self.ok(b.select("INBOX"))
        self.ok(a.store("2", "+FLAGS", "(\\Flagged $Shared)"))
        b.untagged_responses.clear()
        self.ok(b.noop())
        fetches = b.untagged_responses.get("FETCH", [])
        self.assertTrue(any(f.startswith(b"2 ") and b"\\Flagged" in f and b"$Shared" in f
                            for f in fetches), fetches)
        typ, data = a._simple_command("MOVE", "1", "Elsewhere")
        self.assertEqual(typ, "OK", data)
        b.untagged_responses.clear()
        self.ok(b.noop())
        self.assertEqual(b.untagged_responses.get("EXPUNGE"), [b"1"])
        data = fetch_text(self.ok(b.fetch("1:*", "(UID FLAGS)")))
        self.assertEqual(re.findall(rb"UID (\d+)", data), [b"2", b"3"])

    # --- SEARCH ----------------------------------------------------------
    def search_setup(self, user):
        c = self.connect(user)
        msgs = [
            b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
            b"Subject: Quarterly report\r\nDate: Mon, 04 Mar 2024 09:00:00 +0000\r\n\r\n"
            b"The numbers are in.\r\n",
            b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nCc: carol@example.test\r\n"
            b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
            b"Date: Tue, 05 Mar 2024 09:00:00 +0000\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + "Schöne GRÜSSE und ÄPFEL\r\n".encode() + b"x" * 2000 + b"\r\n",
            b"From: Carol <carol@example.test>\r\nTo: bob@example.test\r\n"
            b"Subject: lunch?\r\nDate: Wed, 06 Mar 2024 09:00:00 +0000\r\n"
            b"X-Priority: 1\r\n\r\nPizza at noon.\r\n",
        ]
        for m in msgs:
            self.append(c, m, date=imaplib.Time2Internaldate(time.time()))
        self.ok(c.select("INBOX"))
        return c

    def search(self, c, *criteria, charset=None, literal=None):
        if literal is not None:
            c.literal = literal
        typ, data = c.search(charset, *criteria)
        self.assertEqual(typ, "OK", data)
        return [int(x) for x in data[0].split()]

    def test_search_keys(self):
        c = self.search_setup("u7")
        self.assertEqual(self.search(c, "ALL"), [1, 2, 3])
        self.assertEqual(self.search(c, "FROM", "alice"), [1])
        self.assertEqual(self.search(c, "TO", "BOB@EXAMPLE"), [1, 3])
        self.assertEqual(self.search(c, "CC", "carol"), [2])
        self.assertEqual(self.search(c, "SUBJECT", "quarterly"), [1])
        self.assertEqual(self.search(c, "HEADER", "X-Priority", "1"), [3])
        self.assertEqual(self.search(c, "HEADER", "X-Priority", '""'), [3])
        self.assertEqual(self.search(c, "BODY", "pizza"), [3])
        self.assertEqual(self.search(c, "TEXT", "lunch"), [3])
        self.assertEqual(self.search(c, "TEXT", "numbers"), [1])
        self.assertEqual(self.search(c, "OR", "FROM", "alice", "FROM", "carol"), [1, 3])
        self.assertEqual(self.search(c, "NOT", "FROM", "alice"), [2, 3])
        self.assertEqual(self.search(c, "(OR FROM alice FROM bob)", "NOT", "TO", "alice"), [1])
        self.assertEqual(self.search(c, "LARGER", "1000"), [2])
        self.assertEqual(self.search(c, "SMALLER", "1000"), [1, 3])
        self.assertEqual(self.search(c, "SENTON", "5-Mar-2024"), [2])
        self.assertEqual(self.search(c, "SENTSINCE", "5-Mar-2024"), [2, 3])
        self.assertEqual(self.search(c, "SENTBEFORE", "5-Mar-2024"), [1])
        today = time.strftime("%d-%b-%Y", time.localtime())
        self.assertEqual(self.search(c, "ON", today), [1, 2, 3])
        self.assertEqual(self.search(c, "BEFORE", today), [])
        self.assertEqual(self.search(c, "SINCE", "1-Jan-2000"), [1, 2, 3])
        self.assertEqual(self.search(c, "2:*"), [2, 3])
        self.assertEqual(self.search(c, "UID", "1,3"), [1, 3])
        self.ok(c.store("2", "+FLAGS", "(\\Flagged $Todo)"))
        self.assertEqual(self.search(c, "FLAGGED"), [2])
        self.assertEqual(self.search(c, "UNFLAGGED"), [1, 3])
        self.assertEqual(self.search(c, "KEYWORD", "$todo"), [2])
        self.assertEqual(self.search(c, "UNKEYWORD", "$Todo"), [1, 3])
        self.assertEqual(self.search(c, "UNSEEN", "UNDELETED", "UNANSWERED", "UNDRAFT"), [1, 2, 3])
        typ, data = c.uid("SEARCH", "FROM", "carol")
        self.assertEqual(data[0].split(), [b"3"])

    def test_search_non_ascii_is_case_insensitive(self):
        c = self.search_setup("u8")
        # RFC 2047 subject, searched in UTF-8 with different case
        self.assertEqual(self.search(c, "SUBJECT", charset="UTF-8",
                                     literal="GRÜSSE".encode()), [])
        self.assertEqual(self.search(c, "SUBJECT", charset="UTF-8",
                                     literal="grüße AUS köln".encode()), [2])
        self.assertEqual(self.search(c, "BODY", charset="UTF-8", literal="äpfel".encode()), [2])
        self.assertEqual(self.search(c, "TEXT", charset="UTF-8", literal="SCHÖNE".encode()), [2])
        typ, data = c._simple_command("SEARCH", "CHARSET", "KOI8-R", "ALL")
        self.assertEqual(typ, "NO")
        self.assertIn(b"BADCHARSET", data[0])

    def test_esearch_return_options(self):
        c = self.search_setup("u9")
        typ, data = c._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "ALL")
        self.assertEqual(typ, "OK")
        es = c.untagged_responses.pop("ESEARCH")[0]
        self.assertRegex(es, rb'^\(TAG "[^"]+"\) MIN 1 MAX 3 COUNT 3 ALL 1:3$')
        typ, data = c._simple_command("UID", "SEARCH", "RETURN", "(COUNT)", "FROM", "nobody")
        es = c.untagged_responses.pop("ESEARCH")[0]
        self.assertRegex(es, rb'^\(TAG "[^"]+"\) UID COUNT 0$')
        typ, data = c._simple_command("SEARCH", "RETURN", "()", "NOT", "FROM", "alice")
        es = c.untagged_responses.pop("ESEARCH")[0]
        self.assertRegex(es, rb'^\(TAG "[^"]+"\) ALL 2:3$')
        for bad in (("RETURN", "(BOGUS)", "ALL"), ("FROB",), ("OR", "SEEN"), ("(SEEN",),
                    ("NOT " * 100 + "SEEN",), ("(" * 100 + "SEEN" + ")" * 100,)):
            with self.assertRaisesRegex(imaplib.IMAP4.error, "BAD", msg=bad):
                c._simple_command("SEARCH", *bad)
        self.ok(c.noop())

    def test_imap4rev2_search_answers_esearch(self):
        c = self.connect("u16")
        for i in range(2):
            self.append(c, SIMPLE)
        self.ok(c.enable("IMAP4rev2"))
        self.ok(c.select("INBOX"))
        typ, data = c._simple_command("SEARCH", "ALL")
        self.assertEqual(typ, "OK", data)
        self.assertNotIn("SEARCH", c.untagged_responses)
        es = c.untagged_responses.pop("ESEARCH")[0]
        self.assertRegex(es, rb'^\(TAG "[^"]+"\) ALL 1:2$')
        self.ok(c.noop())

    # --- COPY / MOVE / UID EXPUNGE ----------------------------------------
    def test_copy_and_move_report_copyuid(self):
        c = self.connect("u10")
        for i in range(3):
            self.append(c, SIMPLE.replace(b"plain one", b"msg %d" % i))
        self.ok(c.create("Archive"))
        typ, data = c.select("INBOX")
        uidvalidity_dst = None
        self.ok(c.store("2", "+FLAGS", "(\\Flagged $Keep)"))
        typ, data = c.copy("1:2", "Archive")
        self.assertEqual(typ, "OK")
        m = re.search(rb"\[COPYUID (\d+) 1:2 (\S+)\]", data[0])
        self.assertIsNotNone(m, data)
        uidvalidity_dst = int(m.group(1))
        self.assertEqual(m.group(2), b"1:2")
        # copy to a folder that does not exist: TRYCREATE
        typ, data = c.copy("1", "Nowhere")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[TRYCREATE]", data[0])
        # copy into the same folder
        typ, data = c.copy("3", "INBOX")
        self.assertEqual(typ, "OK")
        self.assertIn(b"COPYUID", data[0])
        # MOVE: COPYUID, then EXPUNGE of the source
        typ, data = c._simple_command("UID", "MOVE", "2:3", "Archive")
        self.assertEqual(typ, "OK", data)
        self.assertIn(b"COPYUID %d 2:3 3:4" % uidvalidity_dst,
                      b" ".join(c.untagged_responses.get("OK", [])))
        self.assertEqual(len(c.untagged_responses.get("EXPUNGE", [])), 2)
        data = fetch_text(self.ok(c.fetch("1:*", "(UID)")))
        self.assertEqual(re.findall(rb"UID (\d+)", data), [b"1", b"4"])
        # the destination has the messages, flags and keywords kept
        self.ok(c.select("Archive"))
        data = fetch_text(self.ok(c.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")))
        self.assertEqual(re.findall(rb"UID (\d+)", data), [b"1", b"2", b"3", b"4"])
        self.assertEqual(re.findall(rb"Subject: (msg \d)", data),
                         [b"msg 0", b"msg 1", b"msg 1", b"msg 2"])
        self.assertIn(b"$Keep", data)
        # move to a missing folder: TRYCREATE, nothing lost
        typ, data = c._simple_command("MOVE", "1", "Nowhere")
        self.assertEqual(typ, "NO")
        self.assertIn(b"TRYCREATE", data[0])
        data = fetch_text(self.ok(c.fetch("1:*", "(UID)")))
        self.assertEqual(re.findall(rb"UID (\d+)", data), [b"1", b"2", b"3", b"4"])

    def test_uid_expunge_removes_only_the_given_deleted_uids(self):
        c = self.connect("u11")
        for i in range(4):
            self.append(c, SIMPLE)
        self.ok(c.select("INBOX"))
        self.ok(c.store("1:3", "+FLAGS", "(\\Deleted)"))
        typ, data = c.uid("EXPUNGE", "2:4")
        self.assertEqual(typ, "OK")
        self.assertEqual(c.untagged_responses.pop("EXPUNGE", []), [b"2", b"2"])
        data = fetch_text(self.ok(c.fetch("1:*", "(UID)")))
        self.assertEqual(re.findall(rb"UID (\d+)", data), [b"1", b"4"])
        # read-only: refused
        self.ok(c.select("INBOX", readonly=True))
        typ, data = c.uid("EXPUNGE", "1")
        self.assertEqual(typ, "NO")

    # --- CONDSTORE / QRESYNC ----------------------------------------------
    def test_fetch_changedsince(self):
        c = self.connect("u12")
        for i in range(3):
            self.append(c, SIMPLE)
        self.ok(c.select("INBOX"))
        data = fetch_text(self.ok(c.fetch("1:*", "(MODSEQ)")))
        mods = [int(x) for x in re.findall(rb"MODSEQ \((\d+)\)", data)]
        self.assertEqual(len(mods), 3)
        high = max(mods)
        self.ok(c.store("2", "+FLAGS", "(\\Answered)"))
        typ, data = c._simple_command("FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %d)" % high)
        self.assertEqual(typ, "OK")
        resp = c.untagged_responses.pop("FETCH", [])
        self.assertEqual(len(resp), 1, resp)
        self.assertTrue(resp[0].startswith(b"2 ("), resp)
        self.assertIn(b"\\Answered", resp[0])
        self.assertIn(b"MODSEQ", resp[0])
        # SEARCH MODSEQ finds the same message
        typ, data = c._simple_command("SEARCH", "MODSEQ", str(high + 1))
        res = c.untagged_responses.pop("SEARCH", [b""])[0]
        self.assertRegex(res, rb"^2 \(MODSEQ \d+\)$")

    def test_qresync_select_reports_vanished(self):
        c = self.connect("u13")
        for i in range(4):
            self.append(c, SIMPLE)
        self.ok(c.enable("QRESYNC"))
        typ, data = c.select("INBOX")
        uidvalidity = int(c.untagged_responses["UIDVALIDITY"][-1])
        high = int(c.untagged_responses["HIGHESTMODSEQ"][-1])
        c.close()
        # another session expunges 2 and flags 3
        c2 = self.connect("u13")
        self.ok(c2.select("INBOX"))
        self.ok(c2.store("2", "+FLAGS", "(\\Deleted)"))
        self.ok(c2.expunge())
        self.ok(c2.store("2", "+FLAGS", "(\\Flagged)"))  # UID 3 is now seq 2
        c2.logout()
        # QRESYNC SELECT: VANISHED (EARLIER) 2 and a FETCH for UID 3
        c.untagged_responses.clear()
        typ, data = c._simple_command("SELECT", "INBOX",
                                      "(QRESYNC (%d %d))" % (uidvalidity, high))
        self.assertEqual(typ, "OK", data)
        c.state = "SELECTED"
        self.assertEqual(c.untagged_responses.get("VANISHED"), [b"(EARLIER) 2"])
        fetches = c.untagged_responses.get("FETCH", [])
        self.assertTrue(any(b"UID 3" in f and b"\\Flagged" in f for f in fetches), fetches)
        # UID FETCH CHANGEDSINCE VANISHED
        c.untagged_responses.clear()
        typ, data = c._simple_command("UID", "FETCH", "1:*", "(FLAGS)",
                                      "(CHANGEDSINCE %d VANISHED)" % high)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(c.untagged_responses.get("VANISHED"), [b"(EARLIER) 2"])
        fetches = c.untagged_responses.get("FETCH", [])
        self.assertEqual(len(fetches), 1, fetches)
        self.assertIn(b"UID 3", fetches[0])
        c.logout()
        # after an index rebuild the tombstones are gone: the UIDs of the
        # set that have no message are reported instead (still exactly 2)
        os.unlink(os.path.join(self.sb.maildir("u13"), "tegami-index.db"))
        c3 = self.connect("u13")
        self.ok(c3.enable("QRESYNC"))
        self.ok(c3.select("INBOX"))
        c3.untagged_responses.clear()
        typ, data = c3._simple_command("UID", "FETCH", "1:4", "(FLAGS)",
                                       "(CHANGEDSINCE %d VANISHED)" % high)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(c3.untagged_responses.get("VANISHED"), [b"(EARLIER) 2"])
