"""End-to-end tests of issue 4 (imapd) that test_imapd.py and
test_imap_fetch.py do not already make: byte-exact round trips of awkward
messages (8-bit, very long lines, no final CRLF, stored with LF by local
delivery), BODYSTRUCTURE/ENVELOPE of a signed message with a forwarded
multipart message and a digest inside, what other sessions are told and
when (RFC 3501 §7.4.1, RFC 7162 VANISHED), UIDs across an index rebuild of
an INBOX filled over SMTP and across a damaged index, folder names in
modified UTF-7, folder names that try to leave the Maildir or reach another
user in every command that takes one, literal bounds, the plain-text login
policy and ENABLE IMAP4rev2.

The expected BODYSTRUCTURE and ENVELOPE strings are written out by hand
from RFC 3501 §7.4.2 and compared after parsing both sides, so a quoted
string and a literal of the same bytes count as equal.
"""

import base64
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


def pw(user):
    return "pw-" + user


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --------------------------------------------------------------- parsing
def parse(data, pos=0):
    """Parse one IMAP value at data[pos:]: a parenthesised list (Python list),
    NIL (None), a number (int), a quoted string or literal (bytes) or an
    atom (bytes). Returns (value, next position)."""
    while data[pos:pos + 1] == b" ":
        pos += 1
    c = data[pos:pos + 1]
    if c == b"(":
        out, pos = [], pos + 1
        while True:
            while data[pos:pos + 1] == b" ":
                pos += 1
            if data[pos:pos + 1] == b")":
                return out, pos + 1
            if pos >= len(data):
                raise ValueError("unterminated list")
            v, pos = parse(data, pos)
            out.append(v)
    if c == b'"':
        out, pos = b"", pos + 1
        while data[pos:pos + 1] != b'"':
            if data[pos:pos + 1] == b"\\":
                pos += 1
            if pos >= len(data):
                raise ValueError("unterminated string")
            out += data[pos:pos + 1]
            pos += 1
        return out, pos + 1
    if c == b"{":
        m = re.compile(rb"\{(\d+)\+?\}\r\n").match(data, pos)
        n = int(m.group(1))
        return data[m.end():m.end() + n], m.end() + n
    m = re.compile(rb"[^ ()\r\n\[]+(\[[^\]]*\](<\d+>)?)?").match(data, pos)
    if not m:
        raise ValueError("cannot parse at %d: %r" % (pos, data[pos:pos + 40]))
    tok = m.group(0)
    if tok.upper() == b"NIL":
        return None, m.end()
    if tok.isdigit():
        return int(tok), m.end()
    return tok, m.end()


def expect(text):
    """The parsed form of an expected value written as IMAP text."""
    value, pos = parse(text)
    assert pos == len(text), (pos, text[pos:])
    return value


def fetch_items(resp):
    """{item name (upper case): value} of one '* n FETCH (...)' response."""
    m = re.match(rb"\* \d+ FETCH ", resp)
    assert m, resp
    items, _ = parse(resp, m.end())
    return {items[i].upper(): items[i + 1] for i in range(0, len(items), 2)}


# --------------------------------------------------------------- client
class Conn:
    """A raw IMAP connection that reads whole responses, literals included."""

    def __init__(self, host, port, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; have %r" % self.buf[:200])
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self):
        """One response; a literal is kept as {n}CRLF<n bytes> inside it."""
        line = self.line()
        out = line
        while True:
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            line = self.line()
            out += line

    def until_tagged(self, tag):
        out = []
        while True:
            r = self.response()
            out.append(r)
            if r.startswith(tag.encode() + b" "):
                return out

    def cmd(self, tag, text):
        self.send(text if isinstance(text, bytes) and text.startswith(tag.encode())
                  else "%s %s\r\n" % (tag, text))
        return self.until_tagged(tag)

    def ok(self, tag, text):
        out = self.cmd(tag, text)
        assert out[-1].startswith(tag.encode() + b" OK"), out
        return out

    def pending(self, wait=0.5):
        """Whatever the server has sent unasked within wait seconds."""
        self.sock.settimeout(wait)
        try:
            while True:
                self._fill()
        except (socket.timeout, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(30)
        data, self.buf = self.buf, b""
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class IssueBase(unittest.TestCase):
    USERS = []
    PARAMS = {}

    @classmethod
    def setUpClass(cls):
        params = {"imapd_auth_failure_delay": "0"}
        params.update(cls.PARAMS)
        cls.sb = Sandbox(domain=DOMAIN, params=params)
        for u in cls.USERS:
            cls.sb.user_add(u, pw(u))
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def setUp(self):
        self.log_start = len(self.sb.log())

    def tearDown(self):
        # whatever a test sent, no tegami process may die over it
        crashes = [line for line in self.sb.log()[self.log_start:].splitlines()
                   if re.search(r"killed by signal|exit status [1-9]|panic|fatal:", line)]
        self.assertEqual(crashes, [], "a tegami process died")

    def imap(self, user):
        m = imaplib.IMAP4(self.sb.host, self.sb.port("imap"), timeout=30)
        self.addCleanup(self._shutdown, m)
        self.assertEqual(m.login(user, pw(user))[0], "OK")
        return m

    @staticmethod
    def _shutdown(m):
        try:
            m.logout()
        except Exception:
            pass

    def conn(self, user=None, port="imap"):
        c = Conn(self.sb.host, self.sb.port(port))
        self.addCleanup(c.close)
        if user:
            c.ok("L", 'LOGIN %s "%s"' % (user, pw(user)))
        return c

    def append(self, m, folder, data, flags=None, date=None):
        typ, resp = m.append(folder, flags, date, data)
        self.assertEqual(typ, "OK", resp)
        match = re.search(rb"\[APPENDUID (\d+) (\d+)\]", resp[0])
        self.assertIsNotNone(match, resp)
        return int(match.group(2))

    def fetch1(self, c, tag, what):
        """The items of the single FETCH response to `tag what`."""
        out = c.ok(tag, what)
        fetches = [r for r in out if re.match(rb"\* \d+ FETCH ", r)]
        self.assertEqual(len(fetches), 1, out)
        return fetch_items(fetches[0])

    def deliver(self, user, msg):
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.sendmail("sender@" + DOMAIN, [user + "@" + DOMAIN], msg)


# ------------------------------------------------------------ messages
def signed_message():
    """multipart/signed > (multipart/mixed > (text/plain 8bit, message/rfc822
    holding a multipart/alternative, multipart/digest with a default-typed
    part, image/png), application/pgp-signature). Returns (message, parts)."""
    text1 = "Grüße aus Köln\r\nzweite Zeile\r\n".encode()
    inner_plain = b"plain text\r\n"
    inner_html = b"<b>html</b>\r\n"
    inner = (b"From: inner@example.test\r\n"
             b"To: someone@example.test\r\n"
             b"Subject: inner alt\r\n"
             b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
             b"MIME-Version: 1.0\r\n"
             b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
             b"\r\n"
             b"--alt\r\n"
             b"Content-Type: text/plain; charset=us-ascii\r\n"
             b"\r\n" + inner_plain + b"\r\n"
             b"--alt\r\n"
             b"Content-Type: text/html; charset=us-ascii\r\n"
             b"Content-ID: <html-part@example.test>\r\n"
             b"Content-Location: http://example.test/x.html\r\n"
             b"\r\n" + inner_html + b"\r\n"
             b"--alt--\r\n")
    digest_msg_body = b"digest body\r\n"
    digest_msg = (b"From: d1@example.test\r\n"
                  b"Subject: digest one\r\n"
                  b"\r\n" + digest_msg_body)
    digest_body = (b"--dig\r\n"
                   b"\r\n" + digest_msg + b"\r\n"
                   b"--dig--\r\n")
    png = b"iVBORw0KGgo=\r\n"
    mixed_mime = b"Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n"
    mixed_body = (b"--mix\r\n"
                  b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
                  b"Content-Transfer-Encoding: 8bit\r\n"
                  b"Content-Language: en, de\r\n"
                  b"\r\n" + text1 + b"\r\n"
                  b"--mix\r\n"
                  b"Content-Type: message/rfc822\r\n"
                  b"Content-Description: forwarded\r\n"
                  b"\r\n" + inner + b"\r\n"
                  b"--mix\r\n"
                  b"Content-Type: multipart/digest; boundary=\"dig\"\r\n"
                  b"\r\n" + digest_body + b"\r\n"
                  b"--mix\r\n"
                  b"Content-Type: image/png; name=\"dot.png\"\r\n"
                  b"Content-Transfer-Encoding: base64\r\n"
                  b"Content-Disposition: inline; filename=\"dot.png\"\r\n"
                  b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
                  b"\r\n" + png + b"\r\n"
                  b"--mix--\r\n")
    sig = b"-----BEGIN PGP SIGNATURE-----\r\nabc\r\n-----END PGP SIGNATURE-----\r\n"
    sig_mime = (b"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
                b"Content-Description: OpenPGP digital signature\r\n"
                b"Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n")
    header = (b"From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.test>\r\n"
              b"Sender: Secretary <sec@example.test>\r\n"
              b"Reply-To: list@example.test\r\n"
              b"To: undisclosed-recipients:;\r\n"
              b"Cc: Team: ann@example.test, \"Ben \\\"B\\\" Bee\" <ben@example.test>;,\r\n"
              b" carl@example.test\r\n"
              b"Bcc: <hidden@example.test>\r\n"
              b"Subject: =?UTF-8?B?w5xiZXJzaWNodA==?=\r\n"
              b"Date: Tue, 2 Jan 2024 03:04:05 -0800\r\n"
              b"In-Reply-To: <parent@example.test>\r\n"
              b"Message-ID: <sig-1@example.test>\r\n"
              b"MIME-Version: 1.0\r\n"
              b"Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
              b" protocol=\"application/pgp-signature\"; boundary=\"sig\"\r\n"
              b"\r\n")
    signed_part = mixed_mime + mixed_body
    msg = (header + b"This is an OpenPGP/MIME signed message.\r\n"
           b"--sig\r\n" + signed_part + b"\r\n"
           b"--sig\r\n" + sig_mime + sig + b"\r\n"
           b"--sig--\r\n")
    return msg, dict(text1=text1, inner=inner, inner_plain=inner_plain, inner_html=inner_html,
                     digest_msg=digest_msg, digest_msg_body=digest_msg_body,
                     digest_body=digest_body, png=png, mixed_mime=mixed_mime,
                     mixed_body=mixed_body, sig=sig, header=header)


def nlines(b):
    return b.count(b"\n")


class ContentTest(IssueBase):
    USERS = ["c1", "c2", "c3", "c4"]

    def test_append_fetch_round_trips_are_byte_exact(self):
        m = self.imap("c1")
        long_line = b"".join(b"%05d-" % i for i in range(4000))  # 24000 octets, no fold
        cases = [
            # 8-bit header and body (UTF-8 and Latin-1 octets), long line
            b"From: J\xc3\xb6rg <j@example.test>\r\nSubject: 8bit \xe4\xf6\xfc\r\n\r\n"
            b"\xc3\xa4\xc3\xb6\xc3\xbc \xff\xfe\x80\r\n" + long_line + b"\r\n.\r\n..\r\n",
            # no final CRLF
            b"Subject: no final newline\r\n\r\nlast line without CRLF",
            # header only, no body, no blank line
            b"Subject: header only\r\nX-Thing: 1\r\n",
            # whitespace at ends of lines and blank lines at the end
            b"Subject: spaces \t\r\n\r\ntrailing  \r\n\t\r\n\r\n\r\n",
            # only a body line starting with "From " (mbox escaping must not happen)
            b"Subject: from line\r\n\r\nFrom here on\r\n>From there\r\n",
        ]
        uids = [self.append(m, "INBOX", msg) for msg in cases]
        m.select("INBOX")
        for uid, msg in zip(uids, cases):
            typ, data = m.uid("FETCH", str(uid), "(RFC822.SIZE BODY.PEEK[])")
            self.assertEqual(typ, "OK", data)
            self.assertEqual(data[0][1], msg)
            self.assertIn(b"RFC822.SIZE %d" % len(msg), data[0][0])
            # The same through a partial fetch in 7000-octet slices.
            got = b""
            while len(got) < len(msg):
                typ, d = m.uid("FETCH", str(uid), "(BODY.PEEK[]<%d.7000>)" % len(got))
                self.assertEqual(typ, "OK", d)
                self.assertGreater(len(d[0][1]), 0)
                got += d[0][1]
            self.assertEqual(got, msg)
        # COPY keeps the bytes, too.
        self.assertEqual(m.create("Copies")[0], "OK")
        typ, data = m.uid("COPY", ",".join(map(str, uids)), "Copies")
        self.assertEqual(typ, "OK", data)
        m.select("Copies")
        for i, msg in enumerate(cases):
            typ, data = m.fetch(str(i + 1), "(BODY.PEEK[])")
            self.assertEqual(data[0][1], msg)

    def test_message_delivered_over_smtp_is_served_with_crlf_and_exact_offsets(self):
        """local stores LF line ends; imapd serves CRLF, and sizes and partial
        offsets are counted on what it serves."""
        user = "c2"
        body = ("Grüße\r\n" + "z" * 3000 + "\r\n\r\n" + "end\r\n").encode()
        msg = (b"From: s@example.test\r\nTo: c2@example.test\r\nSubject: lf stored\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.ehlo()
            s.sendmail("sender@" + DOMAIN, [user + "@" + DOMAIN], msg,
                       mail_options=["BODY=8BITMIME"])
        self.assertEqual(len(self.sb.wait_messages(user, 1)), 1)
        with open(self.sb.messages(user)[0], "rb") as f:
            self.assertNotIn(b"\r\n", f.read())  # the premise: LF on disk
        m = self.imap(user)
        m.select("INBOX")
        typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
        full = data[0][1]
        self.assertTrue(full.endswith(msg), full[-200:])
        self.assertNotRegex(full, rb"[^\r]\n")
        self.assertIn(b"RFC822.SIZE %d" % len(full), data[0][0])
        typ, data = m.fetch("1", "(BODY.PEEK[TEXT] BODY.PEEK[HEADER])")
        self.assertEqual(data[0][1], body)
        self.assertEqual(data[1][1] + body, full)
        for off, n in ((0, 1), (1, 5), (len(full) - len(body) - 2, 4), (len(full) - 3, 10),
                       (len(full) - len(body) + 7, 1)):
            typ, data = m.fetch("1", "(BODY.PEEK[]<%d.%d>)" % (off, n))
            self.assertEqual(data[0][1], full[off:off + n], (off, n))
        typ, data = m.fetch("1", "(BODY.PEEK[TEXT]<5.3>)")
        self.assertEqual(data[0][1], body[5:8])
        typ, data = m.fetch("1", "(BODY.PEEK[1]<0.8>)")
        self.assertEqual(data[0][1], body[:8])

    def test_bodystructure_and_envelope_of_a_signed_message_with_nested_parts(self):
        msg, p = signed_message()
        m = self.imap("c3")
        uid = self.append(m, "INBOX", msg)
        m.logout()
        inner_env = (b'("Mon, 1 Jan 2024 00:00:00 +0000" "inner alt" '
                     b'((NIL NIL "inner" "example.test")) ((NIL NIL "inner" "example.test")) '
                     b'((NIL NIL "inner" "example.test")) ((NIL NIL "someone" "example.test")) '
                     b'NIL NIL NIL NIL)')
        inner_bs = (b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d NIL NIL NIL NIL)'
                    b'("text" "html" ("charset" "us-ascii") "<html-part@example.test>" NIL "7bit" '
                    b'%d %d NIL NIL NIL "http://example.test/x.html") '
                    b'"alternative" ("boundary" "alt") NIL NIL NIL)'
                    % (len(p["inner_plain"]), nlines(p["inner_plain"]),
                       len(p["inner_html"]), nlines(p["inner_html"])))
        text1 = (b'("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "8bit" %d %d '
                 b'NIL NIL ("en" "de") NIL)' % (len(p["text1"]), nlines(p["text1"])))
        fwd = (b'("message" "rfc822" NIL NIL "forwarded" "7bit" %d %s %s %d NIL NIL NIL NIL)'
               % (len(p["inner"]), inner_env, inner_bs, nlines(p["inner"])))
        # RFC 2046 §5.1.5: a part of a multipart/digest without Content-Type
        # is message/rfc822.
        digest_env = (b'(NIL "digest one" ((NIL NIL "d1" "example.test")) '
                      b'((NIL NIL "d1" "example.test")) ((NIL NIL "d1" "example.test")) '
                      b'NIL NIL NIL NIL NIL)')
        digest = (b'(("message" "rfc822" NIL NIL NIL "7bit" %d %s '
                  b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d NIL NIL NIL NIL) '
                  b'%d NIL NIL NIL NIL) "digest" ("boundary" "dig") NIL NIL NIL)'
                  % (len(p["digest_msg"]), digest_env, len(p["digest_msg_body"]),
                     nlines(p["digest_msg_body"]), nlines(p["digest_msg"])))
        png = (b'("image" "png" ("name" "dot.png") NIL NIL "base64" %d '
               b'"Q2hlY2sgSW50ZWdyaXR5IQ==" ("inline" ("filename" "dot.png")) NIL NIL)'
               % len(p["png"]))
        mixed = (b'(' + text1 + fwd + digest + png +
                 b' "mixed" ("boundary" "mix") NIL NIL NIL)')
        sig = (b'("application" "pgp-signature" ("name" "signature.asc") NIL '
               b'"OpenPGP digital signature" "7bit" %d NIL '
               b'("attachment" ("filename" "signature.asc")) NIL NIL)' % len(p["sig"]))
        bodystructure = (b'(' + mixed + sig + b' "signed" ("micalg" "pgp-sha256" "protocol" '
                         b'"application/pgp-signature" "boundary" "sig") NIL NIL NIL)')
        envelope = (b'("Tue, 2 Jan 2024 03:04:05 -0800" "=?UTF-8?B?w5xiZXJzaWNodA==?=" '
                    b'(("=?UTF-8?Q?J=C3=B6rg?=" NIL "joerg" "example.test")) '
                    b'(("Secretary" NIL "sec" "example.test")) '
                    b'((NIL NIL "list" "example.test")) '
                    b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
                    b'((NIL NIL "Team" NIL)(NIL NIL "ann" "example.test")'
                    b'("Ben \\"B\\" Bee" NIL "ben" "example.test")(NIL NIL NIL NIL)'
                    b'(NIL NIL "carl" "example.test")) '
                    b'((NIL NIL "hidden" "example.test")) '
                    b'"<parent@example.test>" "<sig-1@example.test>")')
        # Three times: fresh, from the index cache, and from a new session
        # (a new process reading the cache).
        for attempt in range(3):
            c = self.conn("c3")
            c.ok("s", "SELECT INBOX")
            for _ in range(1 if attempt == 2 else 2):
                items = self.fetch1(c, "f", "UID FETCH %d (BODYSTRUCTURE ENVELOPE)" % uid)
                self.assertEqual(items[b"BODYSTRUCTURE"], expect(bodystructure))
                self.assertEqual(items[b"ENVELOPE"], expect(envelope))
            c.close()
        # Sections inside it. PGP/MIME verification needs BODY[1.MIME] and
        # BODY[1] to be exactly the signed bytes.
        c = self.conn("c3")
        c.ok("s", "EXAMINE INBOX")
        want = {
            b"BODY[1.MIME]": p["mixed_mime"],
            b"BODY[1]": p["mixed_body"],
            b"BODY[1.1]": p["text1"],
            b"BODY[1.2]": p["inner"],
            b"BODY[1.2.HEADER]": p["inner"].split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n",
            b"BODY[1.2.1]": p["inner_plain"],
            b"BODY[1.2.2]": p["inner_html"],
            b"BODY[1.3]": p["digest_body"],
            b"BODY[1.3.1]": p["digest_msg"],
            b"BODY[1.3.1.TEXT]": p["digest_msg_body"],
            b"BODY[1.4]": p["png"],
            b"BODY[2]": p["sig"],
            b"BODY[HEADER]": p["header"],
        }
        for section, data in want.items():
            peek = section.replace(b"BODY[", b"BODY.PEEK[").decode()
            items = self.fetch1(c, "f", "UID FETCH %d (%s)" % (uid, peek))
            self.assertEqual(items.get(section), data, section)
        signed = (self.fetch1(c, "a", "UID FETCH %d (BODY.PEEK[1.MIME])" % uid)[b"BODY[1.MIME]"] +
                  self.fetch1(c, "b", "UID FETCH %d (BODY.PEEK[1])" % uid)[b"BODY[1]"])
        self.assertIn(b"--sig\r\n" + signed + b"\r\n--sig\r\n", msg)

    def test_search_finds_text_in_nested_parts_and_decoded_headers(self):
        msg, _ = signed_message()
        m = self.imap("c4")
        uid = self.append(m, "INBOX", msg)
        self.append(m, "INBOX", b"Subject: other\r\n\r\nnothing here\r\n")
        m.select("INBOX")
        for key in ('SUBJECT "übersicht"', 'FROM "jörg"', 'BODY "KÖLN"', 'BODY "digest body"',
                    'TEXT "<b>html</b>"', 'HEADER Content-Type signed', 'CC "carl"'):
            typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", key.encode())
            self.assertEqual(typ, "OK", (key, data))
            self.assertEqual(data[0].split(), [str(uid).encode()], key)


class SessionsTest(IssueBase):
    USERS = ["s1", "s2", "s3", "s4"]

    def test_expunge_is_not_sent_during_fetch_and_sequence_numbers_hold(self):
        """RFC 3501 §7.4.1: no EXPUNGE during FETCH, STORE or SEARCH; until
        told, a session keeps its own message numbers."""
        m = self.imap("s1")
        uids = [self.append(m, "INBOX", b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
                for i in range(1, 5)]
        b = self.conn("s1")
        b.ok("s", "SELECT INBOX")
        m.select("INBOX")
        m.store("2", "+FLAGS", r"(\Deleted)")
        self.assertEqual(m.expunge()[0], "OK")
        out = b.ok("f", "FETCH 3 (UID)")
        self.assertFalse([r for r in out if r.endswith(b"EXPUNGE")], out)
        self.assertIn(b"* 3 FETCH (UID %d)" % uids[2], out)
        out = b.ok("t", "STORE 4 +FLAGS.SILENT (\\Flagged)")
        self.assertFalse([r for r in out if r.endswith(b"EXPUNGE")], out)
        out = b.ok("r", "SEARCH ALL")
        self.assertFalse([r for r in out if r.endswith(b"EXPUNGE")], out)
        # The other messages keep their numbers (3 and 4, not 2 and 3), and
        # the expunged one still matches ALL until the session is told, as
        # Dovecot does (RFC 2180 §4.1.3 allows either; clients see Dovecot).
        self.assertIn(b"* SEARCH 1 2 3 4", out)
        out = b.ok("n", "NOOP")
        self.assertIn(b"* 2 EXPUNGE", out)
        out = b.ok("g", "FETCH 1:* (UID)")
        self.assertEqual([r for r in out if b"FETCH" in r],
                         [b"* %d FETCH (UID %d)" % (i + 1, u)
                          for i, u in enumerate([uids[0], uids[2], uids[3]])])
        # The flag B set is seen by A.
        typ, data = m.uid("FETCH", str(uids[3]), "(FLAGS)")
        self.assertIn(b"\\Flagged", data[-1])

    def test_every_session_of_a_folder_is_told_with_qresync_and_condstore_details(self):
        m = self.imap("s2")
        u1 = self.append(m, "INBOX", b"Subject: a\r\n\r\na\r\n")
        u2 = self.append(m, "INBOX", b"Subject: b\r\n\r\nb\r\n")
        plain = self.conn("s2")
        plain.ok("s", "SELECT INBOX")
        cond = self.conn("s2")
        cond.ok("e", "ENABLE CONDSTORE")
        cond.ok("s", "SELECT INBOX")
        qr = self.conn("s2")
        qr.ok("e", "ENABLE QRESYNC")
        qr.ok("s", "SELECT INBOX")
        ro = self.conn("s2")
        ro.ok("s", "EXAMINE INBOX")
        m.select("INBOX")
        typ, data = m.uid("STORE", str(u1), "+FLAGS", r"(\Answered $Work)")
        self.assertEqual(typ, "OK", data)
        for c in (plain, cond, qr, ro):
            out = c.ok("n", "NOOP")
            fetch = [r for r in out if r.startswith(b"* 1 FETCH")]
            self.assertEqual(len(fetch), 1, out)
            items = fetch_items(fetch[0])
            self.assertIn(b"\\Answered", items[b"FLAGS"])
            self.assertIn(b"$Work", items[b"FLAGS"])
            if c in (cond, qr):  # RFC 7162 §3.1.4 / §3.2.4
                self.assertIn(b"MODSEQ", items, out)
            if c is qr:
                self.assertEqual(items.get(b"UID"), u1, out)
            # a keyword new to the folder comes with a new FLAGS list first
            self.assertTrue(any(r.startswith(b"* FLAGS (") and b"$Work" in r for r in out), out)
        m.uid("STORE", str(u2), "+FLAGS.SILENT", r"(\Deleted)")
        self.assertEqual(m.expunge()[0], "OK")
        for c in (plain, cond, ro):
            self.assertIn(b"* 2 EXPUNGE", c.ok("n", "NOOP"))
        out = qr.ok("n", "NOOP")
        self.assertIn(b"* VANISHED %d" % u2, out)
        self.assertFalse([r for r in out if r.endswith(b"EXPUNGE")], out)
        # A message arriving by SMTP reaches all of them.
        self.deliver("s2", b"Subject: by smtp\r\n\r\nhi\r\n")
        self.sb.wait_messages("s2", 2)
        deadline = time.time() + 20
        for c in (plain, cond, qr, ro):
            while True:
                out = c.ok("n", "NOOP")
                if b"* 2 EXISTS" in out:
                    break
                self.assertLess(time.time(), deadline, out)
                time.sleep(0.2)

    def test_idle_sees_moves_from_other_sessions_and_sendmail_deliveries(self):
        m = self.imap("s3")
        self.assertEqual(m.create("Box")[0], "OK")
        self.append(m, "INBOX", b"Subject: to move\r\n\r\nx\r\n")
        c = self.conn("s3")
        c.ok("s", "SELECT Box")
        c.send("i IDLE\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        m.select("INBOX")
        typ, data = m._simple_command("MOVE", "1", "Box")
        self.assertEqual(typ, "OK", data)
        self.assertEqual(c.line(), b"* 1 EXISTS")
        c.send("DONE\r\n")
        self.assertTrue(c.until_tagged("i")[-1].startswith(b"i OK"))
        # Idle on the INBOX, now empty; mail comes in through sendmail(1)
        # (maildrop, pickup, qmgr, local), not SMTP.
        c.ok("s2", "SELECT INBOX")
        c.send("j IDLE\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        self.sb.sendmail(["s3@" + DOMAIN], b"Subject: via sendmail\n\nhi\n")
        c.sock.settimeout(30)
        self.assertEqual(c.line(), b"* 1 EXISTS")
        c.send("DONE\r\n")
        self.assertTrue(c.until_tagged("j")[-1].startswith(b"j OK"))
        items = self.fetch1(c, "f", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(items[b"BODY[HEADER.FIELDS (SUBJECT)]"], b"Subject: via sendmail\r\n\r\n")

    def test_a_session_on_another_folder_is_not_disturbed(self):
        m = self.imap("s4")
        self.assertEqual(m.create("Quiet")[0], "OK")
        c = self.conn("s4")
        c.ok("s", "SELECT Quiet")
        self.append(m, "INBOX", b"Subject: x\r\n\r\nx\r\n")
        out = c.ok("n", "NOOP")
        self.assertEqual(len(out), 1, out)  # only the tagged OK: no EXISTS, no RECENT


class IndexTest(IssueBase):
    USERS = ["i1", "i2"]

    def uid_map(self, user, folder="INBOX"):
        """{Message-ID: (UID, flags)} and UIDVALIDITY, UIDNEXT of a folder."""
        m = self.imap(user)
        typ, data = m.select(folder)
        self.assertEqual(typ, "OK", data)
        uv = int(m.response("UIDVALIDITY")[1][0])
        un = int(m.response("UIDNEXT")[1][0])
        out = {}
        typ, data = m.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).split())
                flags.discard(b"\\Recent")
                out[item[1].strip()] = (uid, flags)
        m.logout()
        return uv, un, out

    def index_files(self, folder_dir):
        return [os.path.join(folder_dir, n) for n in os.listdir(folder_dir)
                if n.startswith("tegami-index")]

    def test_inbox_filled_over_smtp_keeps_uids_and_flags_across_rebuilds(self):
        user = "i1"
        for i in range(5):
            self.deliver(user, b"Message-ID: <r%d@x>\r\nSubject: %d\r\n\r\nbody\r\n" % (i, i))
        self.sb.wait_messages(user, 5)
        m = self.imap(user)
        m.select("INBOX")
        m.store("1", "+FLAGS", r"(\Seen)")
        m.store("2", "+FLAGS", r"(\Flagged \Answered)")
        m.store("3", "+FLAGS", r"(\Draft)")
        m.store("4", "+FLAGS", r"(\Deleted)")
        m.logout()
        uv, un, before = self.uid_map(user)
        self.assertEqual(len(before), 5)
        # Stop, lose the whole index (not the UIDVALIDITY file), and deliver
        # two more while imapd is down.
        self.sb.stop()
        removed = self.index_files(self.sb.maildir(user))
        self.assertTrue(any(p.endswith("tegami-index.db") for p in removed), removed)
        for p in removed:
            os.unlink(p)
        self.sb.start()
        for i in range(5, 7):
            self.deliver(user, b"Message-ID: <r%d@x>\r\nSubject: %d\r\n\r\nbody\r\n" % (i, i))
        self.sb.wait_messages(user, 7)
        uv2, un2, after = self.uid_map(user)
        self.assertEqual(uv2, uv)
        for mid, (uid, flags) in before.items():
            self.assertEqual(after[mid], (uid, flags), mid)
        new = [after[b"Message-ID: <r%d@x>" % i][0] for i in (5, 6)]
        self.assertTrue(all(u >= un for u in new), (new, un))
        self.assertEqual(len(set(new)), 2)
        self.assertGreaterEqual(un2, max(new) + 1)

    def test_a_damaged_index_is_rebuilt_without_losing_uids(self):
        user = "i2"
        m = self.imap(user)
        self.assertEqual(m.create("Dmg")[0], "OK")
        uids = [self.append(m, "Dmg", b"Message-ID: <d%d@x>\r\n\r\nx\r\n" % i,
                            r"(\Seen)" if i % 2 else None) for i in range(4)]
        m.logout()
        uv, un, before = self.uid_map(user, "Dmg")
        folder = os.path.join(self.sb.maildir(user), ".Dmg")
        db = os.path.join(folder, "tegami-index.db")
        self.assertTrue(os.path.exists(db))
        for garbage in (b"\0" * 4096 + b"not a database" * 100, b""):
            with open(db, "wb") as f:
                f.write(garbage)
            uv2, un2, after = self.uid_map(user, "Dmg")
            self.assertEqual(uv2, uv)
            self.assertEqual(after, before)
            self.assertGreaterEqual(un2, un)
        self.assertEqual(sorted(u for u, _ in before.values()), uids)
        # imapd is still serving everyone
        self.imap(user).noop()


class NamesTest(IssueBase):
    USERS = ["n1", "n2", "n3", "victim"]

    def setUp(self):
        super().setUp()
        v = imaplib.IMAP4(self.sb.host, self.sb.port("imap"), timeout=30)
        v.login("victim", pw("victim"))
        if v.create("Secret")[0] == "OK":
            v.append("Secret", None, None, b"Subject: secret\r\n\r\nvictim only\r\n")
            v.append("INBOX", None, None, b"Subject: inbox secret\r\n\r\nvictim only\r\n")
        v.logout()

    def tree(self, root):
        out = {}
        for d, _, files in os.walk(root):
            for n in files:
                if not n.startswith("tegami-index"):
                    out[os.path.relpath(os.path.join(d, n), root)] = os.path.getsize(
                        os.path.join(d, n))
        return out

    def test_modified_utf7_names_work_in_every_command(self):
        m = self.imap("n1")
        names = {"&ZeVnLIqe-": "日本語", "Entw&APw-rfe": "Entwürfe", "Tom &- Jerry": "Tom & Jerry",
                 "&AMk-t&AOk-": "Été", "&AMk-t&AOk-.Caf&AOk-": "Été.Café"}
        for wire in names:
            self.assertEqual(m.create('"%s"' % wire)[0], "OK", wire)
        for wire in names:
            self.assertTrue(os.path.isdir(os.path.join(self.sb.maildir("n1"), "." + wire)), wire)
            uid = self.append(m, '"%s"' % wire, b"Subject: in %s\r\n\r\nx\r\n" % wire.encode())
            typ, data = m.status('"%s"' % wire, "(MESSAGES UIDNEXT)")
            self.assertEqual(typ, "OK", data)
            self.assertIn(b"MESSAGES 1", data[0])
            self.assertIn(b"UIDNEXT %d" % (uid + 1), data[0])
            typ, data = m.select('"%s"' % wire)
            self.assertEqual(typ, "OK", (wire, data))
        typ, data = m.list('""', "*")
        listed = b"\n".join(data)
        for wire in names:
            self.assertIn(wire.encode(), listed)
        self.assertIn(b"\\HasChildren", [ln for ln in data if ln.endswith(b"&AMk-t&AOk-")][0])
        # MOVE between two non-ASCII folders
        m.select('"&ZeVnLIqe-"')
        typ, data = m._simple_command("MOVE", "1", '"Entw&APw-rfe"')
        self.assertEqual(typ, "OK", data)
        typ, data = m.status('"Entw&APw-rfe"', "(MESSAGES)")
        self.assertIn(b"MESSAGES 2", data[0])
        # The same folder under UTF8=ACCEPT is named in UTF-8.
        c = self.conn("n1")
        c.ok("e", "ENABLE UTF8=ACCEPT")
        out = c.ok("l", 'LIST "" "*"')
        text = b"\n".join(out)
        for utf8 in names.values():
            leaf = utf8.split(".")[-1].encode()
            self.assertIn(leaf, text)
        self.assertNotIn(b"&ZeVnLIqe-", text)
        out = c.ok("s", 'SELECT "日本語"')
        self.assertIn(b"* 0 EXISTS", out)

    def test_names_that_are_not_valid_modified_utf7_are_refused(self):
        m = self.imap("n2")
        before = sorted(os.listdir(self.sb.maildir("n2")))
        c = self.conn("n2")
        bad = [b'"&AGE-"',          # encodes "a": printable ASCII must be itself
               b'"&Jjo"',           # no end of the base64 run
               b'"&Jjo!-"',         # not base64
               b'"&2D0-"',          # a lone high surrogate
               b'"&-&-&"',          # ends in a shift
               b'"Entw\xc3\xbcrfe"',  # raw UTF-8 without ENABLE UTF8=ACCEPT
               b'"x\x01y"']         # a control character
        for i, name in enumerate(bad):
            out = c.cmd("c%d" % i, b"c%d CREATE %s\r\n" % (i, name))
            self.assertRegex(out[-1], rb"^c\d+ (NO|BAD)", name)
        self.assertEqual(sorted(os.listdir(self.sb.maildir("n2"))), before)
        self.assertEqual(c.ok("n", "NOOP")[-1][:4], b"n OK")
        m.noop()

    def test_names_leaving_the_maildir_are_refused_in_every_command(self):
        m = self.imap("n3")
        self.append(m, "INBOX", b"Subject: mine\r\n\r\nx\r\n")
        root = os.path.join(self.sb.dir, "mail")
        victim = self.sb.maildir("victim")
        before_all = self.tree(root)
        before_tmp = set(os.listdir("/tmp"))
        evil = ["..", "../victim", "../../victim/Maildir", "../victim/Maildir/.Secret",
                "~victim/Secret", "~/../victim", victim, victim + "/.Secret",
                "/etc", "/tmp/evil", "INBOX/../../victim", ".", ".Secret", "..Secret",
                "a/../../victim", "\\..\\victim", ".INBOX", "Secret/..", "Trash..Secret",
                "Trash/../../..", "&AC4ALg-"]  # the last is ".." in modified UTF-7
        m.select("INBOX")
        for name in evil:
            q = '"%s"' % name.replace("\\", "\\\\")
            for what, res in (("SELECT", lambda: m.select(q)),
                              ("EXAMINE", lambda: m.select(q, readonly=True)),
                              ("STATUS", lambda: m.status(q, "(MESSAGES)")),
                              ("CREATE", lambda: m.create(q)),
                              ("DELETE", lambda: m.delete(q)),
                              ("RENAME from", lambda: m.rename(q, "Stolen")),
                              ("RENAME to", lambda: m.rename("Trash", q)),
                              ("APPEND", lambda: m.append(q, None, None,
                                                          b"Subject: planted\r\n\r\nx\r\n")),
                              ("SUBSCRIBE", lambda: m.subscribe(q))):
                try:
                    typ, data = res()
                except imaplib.IMAP4.error as e:  # BAD is a refusal too
                    typ, data = "BAD", [str(e)]
                if what == "SUBSCRIBE" and typ == "OK":
                    # RFC 3501 allows subscribing to a name that does not
                    # exist; it must not be usable, though (checked below).
                    continue
                self.assertIn(typ, ("NO", "BAD"), (what, name, data))
            m.select("INBOX")
            for cmd in ("COPY", "MOVE"):
                typ, data = m._simple_command(cmd, "1", q)
                self.assertIn(typ, ("NO", "BAD"), (cmd, name, data))
                m.select("INBOX")
            for ref, pat in (("", name + "*"), (name, "*"), (name, "%")):
                typ, data = m.list('"%s"' % ref.replace("\\", "\\\\"),
                                   '"%s"' % pat.replace("\\", "\\\\"))
                text = b"\n".join(d for d in data if d)
                self.assertNotIn(b"Secret", text, (ref, pat))
                self.assertNotIn(b"victim", text, (ref, pat))
        # Nothing anywhere under mail/ changed but n3's own INBOX and
        # subscriptions, and nothing new appeared in /tmp.
        after_all = self.tree(root)
        changed = {k for k in set(before_all) | set(after_all)
                   if before_all.get(k) != after_all.get(k)}
        for k in changed:
            self.assertTrue(k.startswith("n3/"), k)
            self.assertNotIn("victim", k)
        self.assertEqual(m.status("Stolen", "(MESSAGES)")[0], "NO")
        self.assertFalse({"evil", "Stolen", ".Stolen"} & (set(os.listdir("/tmp")) - before_tmp))
        # The victim still has exactly its two messages.
        v = self.imap("victim")
        self.assertIn(b"MESSAGES 1", v.status("Secret", "(MESSAGES)")[1][0])
        self.assertIn(b"MESSAGES 1", v.status("INBOX", "(MESSAGES)")[1][0])

    def test_login_names_cannot_point_at_other_mailboxes(self):
        for name in ("../victim", "victim/../n1", "n1/../victim", "victim\0n1", "/victim",
                     "~victim", "victim@" + DOMAIN + "/..", "*", "%"):
            c = self.conn()
            q = name.replace("\\", "\\\\").replace('"', '\\"')
            if "\0" in name:
                b = base64.b64encode(b"\0" + name.encode() + b"\0" + pw("victim").encode())
                out = c.cmd("a", "AUTHENTICATE PLAIN " + b.decode())
            else:
                out = c.cmd("a", 'LOGIN "%s" "%s"' % (q, pw("victim")))
            self.assertRegex(out[-1], rb"^a (NO|BAD)", name)


class BoundsTest(IssueBase):
    USERS = ["b1"]
    PARAMS = {"imapd_max_literal_size": "4096", "imapd_max_append_size": "65536",
              "imapd_max_command_size": "8192"}

    def test_append_at_the_limit_is_taken_and_one_octet_more_is_refused_unread(self):
        c = self.conn("b1")
        msg = b"Subject: max\r\n\r\n" + b"x" * (65536 - 18) + b"\r\n"
        self.assertEqual(len(msg), 65536)
        c.send(b"a APPEND INBOX {65536}\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        c.send(msg + b"\r\n")
        self.assertTrue(c.until_tagged("a")[-1].startswith(b"a OK"))
        c.send(b"b APPEND INBOX {65537}\r\n")
        ln = c.line()
        self.assertRegex(ln, rb"^b NO \[TOOBIG\]")
        # Never read: the connection is in step, the next command works.
        self.assertTrue(c.cmd("c", "NOOP")[-1].startswith(b"c OK"))
        out = c.ok("s", "STATUS INBOX (MESSAGES)")
        self.assertIn(b"MESSAGES 1", out[0])
        self.sb.expect_log_text("literal of 65537 bytes refused")

    def test_other_literals_over_the_limit_are_refused_before_the_continuation(self):
        c = self.conn("b1")
        c.ok("s", "SELECT INBOX")
        c.send(b"a SEARCH TEXT {4097}\r\n")
        ln = c.line()
        self.assertRegex(ln, rb"^a (BAD|NO)")
        self.assertTrue(c.cmd("b", "NOOP")[-1].startswith(b"b OK"))
        # within the literal bound, but the command as a whole too long
        c.send(b"c SEARCH TEXT {4000}\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        c.send(b"y" * 4000 + b" TEXT {4000}\r\n")
        ln = c.line()
        if ln.startswith(b"+"):
            c.send(b"y" * 4000 + b" TEXT {4000}\r\n")
            ln = c.line()
        self.assertRegex(ln, rb"^c (BAD|NO)")
        self.assertTrue(c.cmd("d", "NOOP")[-1].startswith(b"d OK"))

    def test_malformed_literal_lengths_get_bad(self):
        c = self.conn("b1")
        for i, lit in enumerate((b"{99999999999999999999999}", b"{18446744073709551617}",
                                 b"{-1}", b"{1a}", b"{}", b"{ 5}", b"{4294967296}")):
            tag = b"m%d" % i
            c.send(tag + b" STATUS " + lit + b"\r\n")
            ln = c.line()
            self.assertRegex(ln, rb"^m\d+ (BAD|NO)", lit)
            self.assertTrue(c.cmd("n", "NOOP")[-1].startswith(b"n OK"), lit)
        self.imap("b1").noop()


class PlaintextPolicyTest(IssueBase):
    """docs/config.md: plain-text LOGIN and AUTHENTICATE PLAIN without TLS
    only from loopback (imapd_plaintext_auth_loopback) or everywhere
    (imapd_plaintext_auth); otherwise LOGINDISABLED."""
    USERS = ["p1"]
    PARAMS = {"imapd_plaintext_auth_loopback": "no"}

    def test_no_plaintext_auth_of_any_kind_before_tls(self):
        c = self.conn()
        self.assertIn(b"LOGINDISABLED", c.greeting + b" ".join(c.ok("c", "CAPABILITY")))
        caps = b" ".join(c.ok("c2", "CAPABILITY"))
        self.assertNotIn(b"AUTH=PLAIN", caps)
        self.assertIn(b"STARTTLS", caps)
        ir = base64.b64encode(b"\0p1\0" + pw("p1").encode()).decode()
        out = c.cmd("a", "AUTHENTICATE PLAIN " + ir)
        self.assertRegex(out[-1], rb"^a (NO|BAD)")
        c.send("b AUTHENTICATE PLAIN\r\n")
        ln = c.line()
        self.assertFalse(ln.startswith(b"+"), ln)  # refused before the password is sent
        self.assertRegex(ln, rb"^b (NO|BAD)")
        out = c.cmd("d", 'LOGIN p1 "%s"' % pw("p1"))
        self.assertRegex(out[-1], rb"^d NO")
        # the session is still not authenticated
        self.assertRegex(c.cmd("e", "SELECT INBOX")[-1], rb"^e (NO|BAD)")
        # After STARTTLS: AUTHENTICATE PLAIN works.
        m = imaplib.IMAP4(self.sb.host, self.sb.port("imap"), timeout=30)
        self.addCleanup(self._shutdown, m)
        m.starttls(ssl_context=no_verify())
        self.assertIn("AUTH=PLAIN", m.capabilities)
        typ, _ = m.authenticate("PLAIN", lambda _: b"\0p1\0" + pw("p1").encode())
        self.assertEqual(typ, "OK")

    def test_imapd_plaintext_auth_yes_allows_login_without_tls(self):
        self.sb.set_param("imapd_plaintext_auth", "yes")
        self.sb.reload()
        try:
            deadline = time.time() + 10
            while True:  # old processes may still be serving for a moment
                c = Conn(self.sb.host, self.sb.port("imap"))
                caps = b" ".join(c.ok("c", "CAPABILITY"))
                if b"LOGINDISABLED" not in caps or time.time() > deadline:
                    break
                c.close()
                time.sleep(0.3)
            self.addCleanup(c.close)
            self.assertNotIn(b"LOGINDISABLED", caps)
            self.assertIn(b"AUTH=PLAIN", caps)
            c.ok("l", 'LOGIN p1 "%s"' % pw("p1"))
        finally:
            self.sb.set_param("imapd_plaintext_auth", "no")
            self.sb.reload()


class Rev2Test(IssueBase):
    USERS = ["r1", "r2"]

    def test_enable_imap4rev2_changes_the_responses(self):
        m = self.imap("r1")
        self.append(m, "INBOX", b"Subject: one\r\n\r\nalpha\r\n")
        self.append(m, "INBOX", b"Subject: two\r\n\r\nbeta\r\n", r"(\Seen)")
        self.append(m, "INBOX", b"Subject: three\r\n\r\nalpha\r\n")
        c = self.conn()
        self.assertRegex(c.cmd("x", "ENABLE IMAP4rev2")[-1], rb"^x (BAD|NO)")  # not yet
        c.ok("L", 'LOGIN r1 "%s"' % pw("r1"))
        out = c.ok("e", "ENABLE IMAP4rev2")
        self.assertIn(b"* ENABLED IMAP4rev2", out)
        out = c.ok("e2", "ENABLE IMAP4rev2")  # already on: not listed again
        self.assertNotIn(b"* ENABLED IMAP4rev2", out)
        out = c.ok("s", "SELECT INBOX")
        text = b"\n".join(out)
        self.assertIn(b"* 3 EXISTS", text)
        self.assertNotRegex(text, rb"\* \d+ RECENT")           # RFC 9051: no RECENT
        self.assertIn(b"\\Seen", [r for r in out if r.startswith(b"* FLAGS")][0])
        self.assertNotIn(b"\\Recent", [r for r in out if r.startswith(b"* FLAGS")][0])
        self.assertRegex(text, rb"\* OK \[UIDVALIDITY \d+\]")
        self.assertRegex(text, rb"\* OK \[UIDNEXT 4\]")
        self.assertRegex(text, rb"\* OK \[PERMANENTFLAGS \(")
        self.assertRegex(text, rb'\* LIST \([^)]*\) "\." "?INBOX"?')  # RFC 9051 §6.3.2
        # SEARCH answers with ESEARCH (RFC 9051 §6.4.4.1)
        out = c.ok("f", 'SEARCH BODY "alpha"')
        self.assertFalse([r for r in out if r.startswith(b"* SEARCH")], out)
        self.assertIn(b'* ESEARCH (TAG "f") ALL 1,3', out)
        out = c.ok("g", 'UID SEARCH BODY "alpha"')
        self.assertIn(b'* ESEARCH (TAG "g") UID ALL 1,3', out)
        out = c.ok("h", "SEARCH SUBJECT nosuchthing")
        self.assertIn(b'* ESEARCH (TAG "h")', out)
        # no \Recent flag in FETCH
        out = c.ok("i", "FETCH 1:* FLAGS")
        self.assertFalse([r for r in out if b"\\Recent" in r], out)
        # STATUS DELETED and SIZE are IMAP4rev2 items
        out = c.ok("j", "STATUS INBOX (MESSAGES DELETED SIZE)")
        self.assertRegex(out[0], rb"MESSAGES 3")
        self.assertRegex(out[0], rb"DELETED 0")
        # A rev1 session of the same user still gets rev1 responses.
        d = self.conn("r1")
        out = d.ok("s", "SELECT INBOX")
        self.assertTrue([r for r in out if re.match(rb"\* \d+ RECENT", r)], out)
        self.assertIn(b"* SEARCH 1 3", d.ok("f", 'SEARCH BODY "alpha"'))

    def test_enable_lists_only_what_it_turned_on(self):
        c = self.conn("r2")
        out = c.ok("e", "ENABLE X-UNKNOWN CONDSTORE IMAP4rev2 NOTHING")
        enabled = [r for r in out if r.startswith(b"* ENABLED")]
        self.assertEqual(len(enabled), 1, out)
        self.assertEqual(sorted(enabled[0].split()[2:]), [b"CONDSTORE", b"IMAP4rev2"])


def serving_pid(sb, conn):
    """The imapd process that serves conn (a Conn), found by its socket."""
    port = conn.sock.getsockname()[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if int(fields[2].split(":")[1], 16) == port:
                        inodes.add("socket:[%s]" % fields[9])
        except OSError:
            pass
    for pid in sb.service_pids("imapd"):
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                    return pid
        except OSError:
            pass
    raise AssertionError("no imapd process serves port %d" % port)


def index_open(pid):
    """Does process pid hold the folder index (its Berkeley DB file) open?"""
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).endswith("/tegami-index.db"):
                return True
        except OSError:
            pass
    return False


class IdleReleaseTest(IssueBase):
    """imapd_idle_release_delay: an idle session closes the folder index and
    frees its records; the next command, or a change during IDLE, loads them
    again, and nothing the session must be told is lost."""

    USERS = ["r1", "r2", "r3"]
    PARAMS = {"imapd_idle_release_delay": "1s"}

    def wait_released(self, pid, released=True):
        deadline = time.time() + 10
        while index_open(pid) == released:
            self.assertLess(time.time(), deadline, "index of pid %d still %s" % (
                pid, "open" if released else "closed"))
            time.sleep(0.1)

    def uids(self, c, tag):
        out = c.ok(tag, "FETCH 1:* (UID)")
        return [int(m.group(1)) for m in
                (re.match(rb"\* \d+ FETCH \(UID (\d+)\)", r) for r in out) if m]

    def test_a_released_session_sees_other_sessions_changes_and_keeps_uids(self):
        m = self.imap("r1")
        uids = [self.append(m, "INBOX", b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
                for i in range(3)]
        c = self.conn("r1")
        c.ok("s", "SELECT INBOX")
        self.assertEqual(self.uids(c, "u"), uids)
        pid = serving_pid(self.sb, c)
        self.wait_released(pid)
        # Meanwhile another session changes flags and expunges; a message
        # arrives over SMTP.
        m.select("INBOX")
        m.uid("STORE", str(uids[1]), "+FLAGS", r"(\Flagged)")
        m.uid("STORE", str(uids[0]), "+FLAGS", r"(\Deleted)")
        self.assertEqual(m.expunge()[0], "OK")
        self.deliver("r1", b"Subject: late\r\n\r\nlate\r\n")
        self.sb.wait_messages("r1", 3)
        deadline = time.time() + 20
        seen = []
        while True:
            out = c.ok("n", "NOOP")
            seen += out
            if b"* 3 EXISTS" in seen:
                break
            self.assertLess(time.time(), deadline, seen)
            time.sleep(0.3)
        self.assertIn(b"* 1 EXPUNGE", seen)
        flags = [r for r in seen if re.match(rb"\* 1 FETCH \(FLAGS", r)]
        self.assertTrue(flags and b"\\Flagged" in flags[-1], seen)
        now = self.uids(c, "v")
        self.assertEqual(now[:2], uids[1:])
        self.assertGreater(now[2], uids[2])
        # Released again: its own STORE and FETCH work, and are not
        # repeated as untagged updates of someone else's change.
        self.wait_released(pid)
        out = c.ok("t", "STORE 2 +FLAGS (\\Seen)")
        fetches = [r for r in out if b"FETCH" in r]
        self.assertEqual(len(fetches), 1, out)
        self.assertTrue(fetches[0].startswith(b"* 2 FETCH (FLAGS (\\Seen"), out)
        self.wait_released(pid)
        items = self.fetch1(c, "f", "UID FETCH %d (FLAGS BODY.PEEK[TEXT])" % uids[2])
        self.assertEqual(items[b"BODY[TEXT]"], b"body 2\r\n")
        self.assertIn(b"\\Seen", items[b"FLAGS"])
        self.assertEqual(self.uids(c, "w"), now)
        out = c.ok("n2", "NOOP")
        self.assertEqual(len(out), 1, out)  # nothing left to tell

    def test_idle_releases_and_still_reports_flags_expunges_and_deliveries(self):
        m = self.imap("r2")
        uids = [self.append(m, "INBOX", b"Subject: %d\r\n\r\nx\r\n" % i) for i in range(3)]
        c = self.conn("r2")
        c.ok("s", "SELECT INBOX")
        pid = serving_pid(self.sb, c)
        c.send("i IDLE\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        self.wait_released(pid)
        m.select("INBOX")
        m.uid("STORE", str(uids[2]), "+FLAGS", r"(\Answered)")
        line = c.line()
        self.assertTrue(line.startswith(b"* 3 FETCH (FLAGS (") and b"\\Answered" in line, line)
        self.wait_released(pid)  # given back again inside the same IDLE
        m.uid("STORE", str(uids[0]), "+FLAGS", r"(\Deleted)")
        self.assertEqual(m.expunge()[0], "OK")
        line = c.line()
        if b"FETCH" in line:  # the \Deleted flag may come first
            self.assertTrue(line.startswith(b"* 1 FETCH (FLAGS (\\Deleted"), line)
            line = c.line()
        self.assertEqual(line, b"* 1 EXPUNGE")
        self.wait_released(pid)
        self.deliver("r2", b"Subject: via smtp\r\n\r\nhi\r\n")
        line = c.line()
        while re.match(rb"\* \d+ RECENT$", line):  # RECENT of the expunge, then of the new one
            line = c.line()
        self.assertEqual(line, b"* 3 EXISTS")
        c.send("DONE\r\n")
        self.assertTrue(c.until_tagged("i")[-1].startswith(b"i OK"))
        now = self.uids(c, "u")
        self.assertEqual(now[:2], uids[1:])
        self.assertGreater(now[2], uids[2])


class NoReleaseTest(IssueBase):
    USERS = ["n1"]
    PARAMS = {"imapd_idle_release_delay": "0"}

    def test_release_delay_zero_keeps_the_index_open(self):
        m = self.imap("n1")
        self.append(m, "INBOX", b"Subject: a\r\n\r\na\r\n")
        c = self.conn("n1")
        c.ok("s", "SELECT INBOX")
        pid = serving_pid(self.sb, c)
        time.sleep(2.5)
        self.assertTrue(index_open(pid))
        c.ok("n", "NOOP")


if __name__ == "__main__":
    unittest.main()
