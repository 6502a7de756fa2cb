"""End-to-end tests of the ESMTP extensions of issue 3, item 6:
SMTPUTF8 (RFC 6531) with a UTF-8 address delivered, CHUNKING/BINARYMIME
(RFC 3030, BDAT) and DSN (RFC 3461: NOTIFY, RET, ENVID, ORCPT) with
success and failure reports."""

import email
import os
import re
import smtplib
import socket
import time
import unittest
import uuid

from harness import Sandbox

ALIASES = """\
# test aliases for test_esmtp.py
jöe: alice
ghost: nobody-here
"""

SIZE_LIMIT = 200000
UTF8_DOMAIN = "bücher.test"  # a U-label in mydestination (RFC 6531: UTF-8 domains)


class Client:
    """A raw SMTP client: exact bytes out, replies parsed as (code, [lines])."""

    def __init__(self, sb, timeout=15):
        self.s = socket.create_connection((sb.host, sb.port("smtp")), timeout=timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed; got %r" % (lines,))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", errors="replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), lines

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self, wait=5):
        """True if the server closes the connection (without sending anything more)."""
        self.s.settimeout(wait)
        try:
            return self.s.recv(1) == b""
        except (socket.timeout, ConnectionError):
            return False


class EsmtpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(params={"message_size_limit": str(SIZE_LIMIT),
                                 "mydestination": "$mydomain, $myhostname, localhost, "
                                                  + UTF8_DOMAIN})
        for user in ("alice", "bob"):
            cls.sb.user_add(user, "pw-" + user)
        with open(os.path.join(cls.sb.dir, "aliases"), "w", encoding="utf-8") as f:
            f.write(ALIASES)
        cls.sb.mailctl("newaliases", check=True)
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # --- helpers ----------------------------------------------------------
    def client(self):
        c = Client(self.sb)
        self.addCleanup(c.close)
        code, _ = c.reply()
        self.assertEqual(code, 220)
        code, lines = c.cmd("EHLO client.example")
        self.assertEqual(code, 250, lines)
        return c

    def find(self, user, needle, timeout=30, count=1):
        return self.sb.find_messages(user, needle, timeout, count)

    def queued_id(self, lines):
        m = re.search(r"queued as ([0-9A-V]+)", lines[-1])
        self.assertIsNotNone(m, lines)
        return m.group(1)

    # --- EHLO ---------------------------------------------------------------
    def test_ehlo_advertises_smtputf8_dsn_chunking_binarymime(self):
        c = Client(self.sb)
        self.addCleanup(c.close)
        c.reply()
        code, lines = c.cmd("EHLO client.example")
        self.assertEqual(code, 250)
        keywords = [line[4:].split(" ")[0] for line in lines[1:]]
        for kw in ("SMTPUTF8", "DSN", "CHUNKING", "BINARYMIME", "8BITMIME", "PIPELINING"):
            self.assertIn(kw, keywords, lines)

    # --- SMTPUTF8 -----------------------------------------------------------
    def test_utf8_address_delivered_with_smtputf8(self):
        d = self.sb.domain
        subject = "utf8-" + uuid.uuid4().hex
        msg = ("From: René <rené@%s>\r\nTo: jöe@%s\r\nSubject: %s\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n" % (d, d, subject))
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("smtputf8"))
            refused = s.sendmail("rené@" + d, ["jöe@" + d], msg.encode("utf-8"),
                                 mail_options=["SMTPUTF8"])
            self.assertEqual(refused, {})
        paths = self.find("alice", subject)
        self.assertEqual(len(paths), 1, self.sb.log()[-3000:])
        with open(paths[0], "rb") as f:
            data = f.read()
        text = data.decode("utf-8")
        # The UTF-8 envelope reaches the mailbox unchanged.
        self.assertTrue(text.startswith("Return-Path: <rené@%s>\n" % d), text[:300])
        # An alias target's Delivered-To is the target (docs/decisions.md, local).
        self.assertIn("\nDelivered-To: alice@%s\n" % d, text)
        self.assertRegex(text, r"with UTF8SMTP id [0-9A-V]+")
        self.assertIn("\tfor <jöe@%s>" % d, text)
        self.assertIn("Grüße", text)
        self.sb.expect_log_text("to=<alice@%s>, orig_to=<jöe@%s>" % (d, d))

    def test_utf8_domain_delivered_with_utf8_delivered_to(self):
        subject = "utf8-domain-" + uuid.uuid4().hex
        rcpt = "alice@" + UTF8_DOMAIN
        msg = "Subject: %s\r\nTo: %s\r\n\r\nhi\r\n" % (subject, rcpt)
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.ehlo("client.example")
            s.sendmail("bob@" + self.sb.domain, [rcpt], msg.encode("utf-8"),
                       mail_options=["SMTPUTF8"])
        paths = self.find("alice", subject)
        self.assertEqual(len(paths), 1, self.sb.log()[-3000:])
        with open(paths[0], "rb") as f:
            text = f.read().decode("utf-8")
        self.assertIn("\nDelivered-To: %s\n" % rcpt, text)
        # A UTF-8 domain without SMTPUTF8 is refused.
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s>" % self.sb.domain)[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt)[0], 553)

    def test_utf8_address_refused_without_smtputf8(self):
        d = self.sb.domain
        c = self.client()
        code, lines = c.cmd("MAIL FROM:<rené@%s>" % d)
        self.assertEqual(code, 553, lines)
        self.assertTrue(lines[-1].startswith("553 5.6.7 "), lines)
        code, lines = c.cmd("MAIL FROM:<bob@%s>" % d)
        self.assertEqual(code, 250, lines)
        code, lines = c.cmd("RCPT TO:<jöe@%s>" % d)
        self.assertEqual(code, 553, lines)
        self.assertTrue(lines[-1].startswith("553 5.6.7 "), lines)
        # Malformed UTF-8 is a bad address even with SMTPUTF8.
        c.cmd("RSET")
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s> SMTPUTF8" % d)[0], 250)
        code, lines = c.cmd(b"RCPT TO:<j\xc3e@" + d.encode() + b">")
        self.assertEqual(code, 501, lines)
        # HELO sessions get no UTF-8 at all.
        self.assertEqual(c.cmd("HELO client.example")[0], 250)
        code, lines = c.cmd("MAIL FROM:<rené@%s> SMTPUTF8" % d)
        self.assertIn(code, (500, 501, 555), lines)
        self.assertEqual(c.cmd("QUIT")[0], 221)

    # --- BDAT ---------------------------------------------------------------
    def test_bdat_several_chunks_stored_byte_exact(self):
        d = self.sb.domain
        marker = "bdat-" + uuid.uuid4().hex
        body = (b"From: bob@" + d.encode() + b"\r\nTo: alice@" + d.encode() +
                b"\r\nSubject: " + marker.encode() + b"\r\n\r\n"
                b"line one\r\n"
                b".a line starting with a dot (no unstuffing in BDAT)\r\n"
                b"\r\n.\r\n"                      # not an end marker here
                b"bare LF\nbare CR\rend\r\n"
                b"binary: \x00\x01\xfe\xff\r\n"
                + b"x" * 70000 + b"\r\n"
                b"last line\r\n")
        # Awkward cuts: inside the header, between CR and LF, inside the dot line.
        cuts = [7, body.index(b"\r\n\r\n") + 1, body.index(b"\r\n.\r\n") + 3,
                body.index(b"bare CR\r") + 8, len(body) - 5]
        chunks, prev = [], 0
        for cut in cuts + [len(body)]:
            chunks.append(body[prev:cut])
            prev = cut
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s> BODY=BINARYMIME" % d)[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@%s>" % d)[0], 250)
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            c.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
            code, lines = c.reply()
            self.assertEqual(code, 250, lines)
            if not last:
                self.assertIn("%d octets" % len(chunk), lines[-1])
        qid = self.queued_id(lines)
        self.assertEqual(c.cmd("QUIT")[0], 221)

        paths = self.find("alice", marker)
        self.assertEqual(len(paths), 1, self.sb.log()[-3000:])
        with open(paths[0], "rb") as f:
            data = f.read()
        expected = body.replace(b"\r\n", b"\n")
        self.assertTrue(data.endswith(expected), data[:600])
        # Only our own trace headers come before the client's bytes.
        prefix = data[:len(data) - len(expected)].decode()
        for line in prefix.splitlines():
            self.assertTrue(line.startswith(("Return-Path:", "Delivered-To:", "Received:", "\t")),
                            line)
        self.assertIn("id %s" % qid, prefix)
        self.sb.expect_log(qid + r": from=<bob@[^>]*>, size=\d+, nrcpt=1, chunks=6")

    def test_bdat_chunk_over_size_limit_is_552_and_discarded(self):
        d = self.sb.domain
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s>" % d)[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@%s>" % d)[0], 250)
        big = b"QUIT\r\n" + b"y" * (SIZE_LIMIT + 10)
        c.send(b"BDAT %d\r\n" % len(big) + big)
        code, lines = c.reply()
        self.assertEqual(code, 552, lines)
        # RFC 3030 §2: the transaction has failed; further chunks are read and refused too.
        c.send(b"BDAT 6 LAST\r\nRSET\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 552, lines)
        # The session goes on (the chunks' bytes were never commands), and nothing was queued.
        self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s>" % d)[0], 250)
        self.assertEqual(c.cmd("RSET")[0], 250)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        self.sb.expect_log(r"reject: size \d+ exceeds message_size_limit %d" % SIZE_LIMIT)

    def test_bdat_sequence_errors_read_and_discard_the_chunk(self):
        d = self.sb.domain
        c = self.client()
        # No MAIL: 503, and the chunk's bytes are not executed as commands.
        payload = b"QUIT\r\nMAIL FROM:<x@y.example>\r\n"
        c.send(b"BDAT %d\r\n" % len(payload) + payload)
        code, lines = c.reply()
        self.assertEqual(code, 503, lines)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        # MAIL but no recipients: 554.
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s>" % d)[0], 250)
        c.send(b"BDAT 4 LAST\r\nQUIT")
        code, lines = c.reply()
        self.assertEqual(code, 554, lines)
        # DATA after BDAT in one transaction: 503; RSET clears it.
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s>" % d)[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@%s>" % d)[0], 250)
        c.send(b"BDAT 5\r\nSubje")
        self.assertEqual(c.reply()[0], 250)
        code, lines = c.cmd("DATA")
        self.assertEqual(code, 503, lines)
        self.assertEqual(c.cmd("RSET")[0], 250)
        # BODY=BINARYMIME with DATA: 503.
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s> BODY=BINARYMIME" % d)[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@%s>" % d)[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 503)
        self.assertEqual(c.cmd("RSET")[0], 250)
        # A size that cannot be parsed ends the session (the bytes cannot be skipped).
        code, lines = c.cmd("BDAT 12x")
        self.assertEqual(code, 501, lines)
        self.assertTrue(c.closed())

    def test_bdat_pipelined_with_the_envelope(self):
        d = self.sb.domain
        marker = "bdat-pipe-" + uuid.uuid4().hex
        body = b"Subject: " + marker.encode() + b"\r\n\r\nhello\r\n"
        c = self.client()
        c.send(b"MAIL FROM:<bob@" + d.encode() + b">\r\nRCPT TO:<alice@" + d.encode() +
               b">\r\nBDAT 3\r\n" + body[:3] + b"BDAT %d LAST\r\n" % (len(body) - 3) +
               body[3:] + b"QUIT\r\n")
        codes = [c.reply()[0] for _ in range(5)]
        self.assertEqual(codes, [250, 250, 250, 250, 221])
        self.assertEqual(len(self.find("alice", marker)), 1)

    # --- DSN ----------------------------------------------------------------
    def send_dsn(self, sender, rcpts, subject, mail_opts, rcpt_opts):
        d = self.sb.domain
        data = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nbody-%s\r\n" %
                (sender, ", ".join(rcpts), subject, subject)).encode()
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("dsn"))
            code, msg = s.mail(sender, mail_opts)
            self.assertEqual(code, 250, msg)
            for r in rcpts:
                code, msg = s.rcpt(r, rcpt_opts(r))
                self.assertEqual(code, 250, msg)
            code, msg = s.data(data)
            self.assertEqual(code, 250, msg)
        m = re.search(rb"queued as ([0-9A-V]+)", msg)
        self.assertIsNotNone(m)
        return m.group(1).decode()

    def report(self, path):
        with open(path, "rb") as f:
            msg = email.message_from_bytes(f.read())
        self.assertEqual(msg.get_content_type(), "multipart/report")
        parts = msg.get_payload()
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        blocks = parts[1].get_payload()
        return msg, parts, blocks[0], blocks[1:]

    def test_dsn_notify_success_failure_produces_both_reports(self):
        d = self.sb.domain
        subject = "dsn-" + uuid.uuid4().hex
        envid = "env+" + uuid.uuid4().hex[:8]
        qid = self.send_dsn(
            "bob@" + d, ["alice@" + d, "ghost@" + d], subject,
            ["RET=HDRS", "ENVID=" + envid.replace("+", "+2B")],
            lambda r: ["NOTIFY=SUCCESS,FAILURE",
                       "ORCPT=rfc822;" + r.replace("@", "+2Borig@")])
        self.assertEqual(len(self.find("alice", "body-" + subject)), 1)
        paths = self.find("bob", subject, count=2)
        self.assertEqual(len(paths), 2, self.sb.log()[-3000:])
        seen = {}
        for p in paths:
            msg, parts, per_msg, rcpts = self.report(p)
            self.assertEqual(per_msg["Original-Envelope-Id"], envid)
            self.assertEqual(len(rcpts), 1)
            seen[rcpts[0]["Action"]] = (msg, parts, rcpts[0])
        self.assertEqual(sorted(seen), ["delivered", "failed"])

        msg, parts, r = seen["delivered"]
        self.assertEqual(msg["Subject"], "Successful Mail Delivery Report")
        self.assertEqual(r["Final-Recipient"], "rfc822; alice@" + d)
        self.assertEqual(r["Original-Recipient"], "rfc822;alice+orig@" + d)
        self.assertTrue(r["Status"].startswith("2."), r["Status"])
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")

        msg, parts, r = seen["failed"]
        self.assertEqual(msg["Subject"], "Undelivered Mail Returned to Sender")
        self.assertEqual(r["Final-Recipient"], "rfc822; ghost@" + d)
        self.assertEqual(r["Original-Recipient"], "rfc822;ghost+orig@" + d)
        self.assertEqual(r["Status"], "5.1.1")
        # RET=HDRS: headers only.
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertNotIn("body-" + subject, parts[2].get_payload())
        self.sb.expect_log_text(qid + ": sender delivery status notification: ")
        self.sb.expect_log_text(qid + ": sender non-delivery notification: ")

    def test_dsn_ret_full_returns_the_message(self):
        d = self.sb.domain
        subject = "dsn-full-" + uuid.uuid4().hex
        self.send_dsn("bob@" + d, ["ghost@" + d], subject, ["RET=FULL"],
                      lambda r: ["NOTIFY=FAILURE"])
        paths = self.find("bob", subject)
        self.assertEqual(len(paths), 1, self.sb.log()[-3000:])
        msg, parts, per_msg, rcpts = self.report(paths[0])
        self.assertEqual(rcpts[0]["Action"], "failed")
        self.assertIsNone(per_msg["Original-Envelope-Id"])
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        with open(paths[0], "rb") as f:
            self.assertIn(b"body-" + subject.encode(), f.read())

    def test_dsn_notify_never_and_default_send_no_report(self):
        d = self.sb.domain
        subject = "dsn-never-" + uuid.uuid4().hex
        qid = self.send_dsn("bob@" + d, ["alice@" + d, "ghost@" + d], subject, [],
                            lambda r: ["NOTIFY=NEVER"])
        self.sb.expect_log(qid + r": removed")
        # Without NOTIFY: a failure report only, never a success report.
        subject2 = "dsn-default-" + uuid.uuid4().hex
        qid2 = self.send_dsn("bob@" + d, ["alice@" + d, "ghost@" + d], subject2, [],
                             lambda r: [])
        self.assertEqual(len(self.find("bob", subject2)), 1)
        self.sb.expect_log(qid2 + r": removed")
        time.sleep(0.5)
        self.assertEqual(self.find("bob", subject, timeout=0), [])
        self.assertEqual(len(self.find("bob", subject2, timeout=0)), 1)
        log = self.sb.log()
        self.assertNotIn(qid + ": sender", log)
        self.assertNotIn(qid2 + ": sender delivery status notification", log)

    def test_dsn_parameter_errors(self):
        d = self.sb.domain
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s> RET=NONE" % d)[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s> ENVID=%s" % (d, "e" * 101))[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s> ENVID=a+0Db" % d)[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s> RET=FULL RET=HDRS" % d)[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<bob@%s> RET=FULL ENVID=x" % d)[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@%s> NOTIFY=NEVER,SUCCESS" % d)[0], 501)
        self.assertEqual(c.cmd("RCPT TO:<alice@%s> ORCPT=rfc822;a+zz" % d)[0], 501)
        self.assertEqual(c.cmd("RCPT TO:<alice@%s> ORCPT=rfc822;%s" % (d, "o" * 500))[0],
                         501)
        self.assertEqual(c.cmd("RCPT TO:<alice@%s> NOTIFY=DELAY ORCPT=rfc822;a@b" % d)[0], 250)
        self.assertEqual(c.cmd("QUIT")[0], 221)


if __name__ == "__main__":
    unittest.main()
