"""End-to-end: mbsync (isync 1.4) synchronising a tegami IMAP account both
ways with a local Maildir, as a user of mbsync would set it up.

Each test has its own user and its own local Maildir and mbsyncrc (in a
temporary directory), so tests do not depend on one another. What mbsync
does to messages on its own account is allowed for when comparing bytes:
it stores LF line ends in the Maildir, sends CRLF over IMAP, and adds an
"X-TUID:" header line to a message it uploads (its way of finding the copy
again); nothing else may differ.

isync 1.4 does not translate folder names between UTF-8 and modified
UTF-7 (that came with 1.5), so a folder with non-ASCII letters is named in
its modified UTF-7 form on the local side, which is what mbsync 1.4 users
see; the server must treat that as the non-ASCII name it encodes.

Each item of issue 4's mbsync list is a test of its own.
"""

import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from harness import Sandbox

DOMAIN = "example.test"
USERS = ["ann", "ben", "cid", "dot", "eve", "fay", "gus", "hal", "ida", "jon"]
MBSYNC = shutil.which("mbsync")


def pw(user):
    return "pw-" + user


def strip_tuid(data):
    """The message without mbsync's own X-TUID header line (if any)."""
    return re.sub(rb"(?m)^X-TUID: [^\r\n]*\r?\n", b"", data, count=1)


def crlf(data):
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def lf(data):
    return data.replace(b"\r\n", b"\n")


def maildir_flags(path):
    name = os.path.basename(path)
    return name.split(":2,", 1)[1] if ":2," in name else ""


class MbsyncTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if MBSYNC is None:
            raise AssertionError("mbsync (isync) is not installed: scripts/deps installs it")
        cls.sb = Sandbox(domain=DOMAIN, params={"imapd_auth_failure_delay": "0"})
        for u in USERS:
            cls.sb.user_add(u, pw(u))
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def setUp(self):
        self.log_start = len(self.sb.log())

    def tearDown(self):
        # whatever mbsync sent, no tegami process may die over it
        crashes = [line for line in self.sb.log()[self.log_start:].splitlines()
                   if re.search(r"killed by signal|exit status [1-9]|panic|fatal:", line)]
        self.assertEqual(crashes, [], "a tegami process died")

    # --- helpers --------------------------------------------------------
    def local_setup(self, user, ssltype="None"):
        """A temp dir with an mbsyncrc for user and an empty local store;
        returns (rc path, local Maildir root)."""
        tmp = tempfile.mkdtemp(prefix="tegami-mbsync-")
        if not os.environ.get("TEGAMI_KEEP"):
            self.addCleanup(shutil.rmtree, tmp, True)
        local = os.path.join(tmp, "mail")
        os.mkdir(local)
        port = self.sb.port("imaps" if ssltype == "IMAPS" else "imap")
        # isync 1.4 checks the certificate against DNS names only, not IP
        # addresses; the sandbox certificate names localhost.
        host = self.sb.host if ssltype == "None" else "localhost"
        cert = os.path.join(self.sb.dir, "tls", "cert.pem")
        rc = os.path.join(tmp, "mbsyncrc")
        with open(rc, "w") as f:
            f.write("IMAPAccount remote\n"
                    "Host %s\nPort %d\nUser %s\nPass %s\n"
                    "SSLType %s\n" % (host, port, user, pw(user), ssltype))
            if ssltype == "None":
                f.write("AuthMechs LOGIN\n")
            else:
                f.write("CertificateFile %s\nSystemCertificates no\n" % cert)
            f.write("Timeout 30\n\n"
                    "IMAPStore remote\nAccount remote\n\n"
                    "MaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n"
                    "Channel sync\nFar :remote:\nNear :local:\nPatterns *\n"
                    "Create Both\nExpunge Both\nSyncState *\n" % (local, local))
        return rc, local

    def mbsync(self, rc):
        """Run `mbsync -c rc -a`; it must succeed. Returns its output."""
        p = subprocess.run([MBSYNC, "-c", rc, "-a"], capture_output=True, text=True,
                           timeout=180)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, "mbsync failed:\n" + out + "\n--- maillog:\n" +
                         self.sb.log()[-3000:])
        self.assertNotIn("Error", out)
        return out

    def connect(self, user):
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

    def deliver(self, user, msg):
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.sendmail("sender@" + DOMAIN, [user + "@" + DOMAIN], msg)

    def server_messages(self, user, folder="INBOX"):
        """{Message-ID: (uid, flags bytes, full message bytes)} of a server folder."""
        m = self.connect(user)
        typ, data = m.select('"%s"' % folder, readonly=True)
        self.assertEqual(typ, "OK", (folder, data))
        out = {}
        if int(data[0]) == 0:
            return out
        typ, data = m.fetch("1:*", "(UID FLAGS BODY.PEEK[])")
        self.assertEqual(typ, "OK", data)
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, body = item
            uid = int(re.search(rb"UID (\d+)", meta).group(1))
            flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1)
            mid = re.search(rb"(?mi)^Message-ID: *(<[^>]*>)", body)
            out[mid.group(1) if mid else b"uid%d" % uid] = (uid, flags, body)
        return out

    def server_state(self, user):
        """What a no-op sync must leave unchanged: every folder's UIDVALIDITY,
        UIDNEXT, HIGHESTMODSEQ, message count and each message's UID and flags."""
        m = self.connect(user)
        typ, data = m.list('""', "*")
        self.assertEqual(typ, "OK", data)
        state = {}
        for line in data:
            name = re.search(rb'"\." (.*)$', line).group(1)
            typ, st = m.status(name.decode(),
                               "(UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES)")
            self.assertEqual(typ, "OK", (name, st))
            typ, sel = m.select(name.decode(), readonly=True)
            self.assertEqual(typ, "OK", (name, sel))
            msgs = []
            if int(sel[0]):
                typ, fl = m.fetch("1:*", "(UID FLAGS)")
                # \Recent belongs to whichever session saw a message first.
                msgs = sorted(re.sub(rb"\\Recent ?", b"", f) for f in fl)
            state[name] = (re.sub(rb"^.*?\(", b"(", st[0]), msgs)
        return state

    def local_files(self, local, folder="INBOX"):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(local, folder, sub)
            if os.path.isdir(d):
                out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
        return out

    def local_by_mid(self, local, folder="INBOX"):
        out = {}
        for path in self.local_files(local, folder):
            with open(path, "rb") as f:
                data = f.read()
            mid = re.search(rb"(?mi)^Message-ID: *(<[^>]*>)", data)
            out[mid.group(1) if mid else path.encode()] = (path, data)
        return out

    @staticmethod
    def local_snapshot(local):
        """Every file under the local store (but mbsync's own state files),
        with its contents."""
        snap = {}
        for root, _, files in os.walk(local):
            for n in files:
                if n.startswith(".mbsyncstate") or n == ".uidvalidity":
                    continue
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    snap[os.path.relpath(p, local)] = f.read()
        return snap

    @staticmethod
    def write_local(local, folder, name, data, flags=None):
        """Put a message into a local Maildir folder (creating it), as a MUA
        would: new/ without flags, cur/ with them."""
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(local, folder, sub), exist_ok=True)
        if flags is None:
            path = os.path.join(local, folder, "new", name)
        else:
            path = os.path.join(local, folder, "cur", name + ":2," + flags)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def message(self, n, body=b"body\r\n", extra=b""):
        return (b"From: Sender <sender@example.test>\r\nTo: x@example.test\r\n"
                b"Subject: mbsync test %d\r\nMessage-ID: <mbsync-%d-%f@example.test>\r\n%s\r\n%s"
                % (n, n, time.time(), extra, body))

    # --- tests ----------------------------------------------------------
    def test_messages_delivered_over_smtp_arrive_locally_byte_identical(self):
        user = "ann"
        msgs = [self.message(1),
                self.message(2, b"line with trailing space \r\n\r\n.dot line\r\n..two dots\r\n"),
                self.message(3, b"x" * 1500 + b"\r\n" + b"tab\there\r\n",
                             b"Content-Type: text/plain; charset=us-ascii\r\n")]
        for msg in msgs:
            self.deliver(user, msg)
        self.assertEqual(len(self.sb.wait_messages(user, 3)), 3)
        rc, local = self.local_setup(user)
        self.mbsync(rc)
        server = self.server_messages(user)
        mine = self.local_by_mid(local)
        self.assertEqual(len(server), 3)
        self.assertEqual(set(server), set(mine))
        for mid, (uid, flags, body) in server.items():
            self.assertEqual(strip_tuid(mine[mid][1]), lf(body), mid)
            # What we sent over SMTP is in there, after the trace headers.
            sent = [m for m in msgs if mid in m][0]
            self.assertTrue(body.endswith(sent), (body, sent))
            # mbsync reads with BODY.PEEK: nothing became \Seen.
            self.assertNotIn(b"\\Seen", flags)
            self.assertNotIn("S", maildir_flags(mine[mid][0]))

    def test_message_added_locally_appears_on_server_byte_exact(self):
        user = "ben"
        rc, local = self.local_setup(user)
        self.mbsync(rc)  # first run: creates the local INBOX and special folders
        self.assertTrue(os.path.isdir(os.path.join(local, "Sent", "cur")))
        long_line = b"y" * 5000
        eight_bit = "Grüße, 日本語\n".encode()
        data = (b"From: Ben <ben@example.test>\nTo: someone@example.test\n"
                b"Subject: written locally\nMessage-ID: <local-1@example.test>\n"
                b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                b"Content-Transfer-Encoding: 8bit\n\n" + eight_bit + long_line + b"\n"
                b"\n.\n..\nlast line\n")
        self.write_local(local, "INBOX", "1700000000.1_1.host", data)
        sent_data = data.replace(b"written locally", b"sent locally").replace(
            b"local-1@", b"local-2@")
        self.write_local(local, "Sent", "1700000001.1_2.host", sent_data, "S")
        self.mbsync(rc)
        server = self.server_messages(user)
        self.assertIn(b"<local-1@example.test>", server)
        uid, flags, body = server[b"<local-1@example.test>"]
        self.assertEqual(strip_tuid(body), crlf(data))
        self.assertNotIn(b"\\Seen", flags)
        sent = self.server_messages(user, "Sent")
        uid, flags, body = sent[b"<local-2@example.test>"]
        self.assertEqual(strip_tuid(body), crlf(sent_data))
        self.assertIn(b"\\Seen", flags)
        # RFC822.SIZE agrees with the bytes served.
        m = self.connect(user)
        m.select("INBOX", readonly=True)
        typ, d = m.uid("FETCH", str(server[b"<local-1@example.test>"][0]), "(RFC822.SIZE)")
        self.assertIn(b"RFC822.SIZE %d" % len(server[b"<local-1@example.test>"][2]), d[0])

    def test_flag_changes_propagate_both_ways(self):
        user = "cid"
        for i in range(3):
            self.deliver(user, self.message(10 + i))
        self.sb.wait_messages(user, 3)
        rc, local = self.local_setup(user)
        self.mbsync(rc)
        mine = self.local_by_mid(local)
        self.assertEqual(len(mine), 3)
        mids = sorted(mine)
        # Local: mark the first one read (a MUA renames it into cur/ with :2,S).
        path = mine[mids[0]][0]
        base = os.path.basename(path).split(":2,")[0]
        os.rename(path, os.path.join(local, "INBOX", "cur", base + ":2,S"))
        # Server: flag the second one.
        m = self.connect(user)
        m.select("INBOX")
        uid2 = self.server_messages(user)[mids[1]][0]
        typ, d = m.uid("STORE", str(uid2), "+FLAGS", r"(\Flagged)")
        self.assertEqual(typ, "OK", d)
        m.logout()
        self.mbsync(rc)
        server = self.server_messages(user)
        self.assertIn(b"\\Seen", server[mids[0]][1])
        self.assertNotIn(b"\\Flagged", server[mids[0]][1])
        mine = self.local_by_mid(local)
        self.assertEqual(maildir_flags(mine[mids[1]][0]), "F")
        self.assertEqual(maildir_flags(mine[mids[0]][0]), "S")
        self.assertNotIn(b"\\Seen", server[mids[2]][1])
        self.assertEqual(maildir_flags(mine[mids[2]][0]), "")
        # Replied-to locally and unflagged on the server, at once.
        os.rename(mine[mids[2]][0], mine[mids[2]][0].split(":2,")[0].replace("/new/", "/cur/")
                  + ":2,RS")
        m = self.connect(user)
        m.select("INBOX")
        typ, d = m.uid("STORE", str(uid2), "-FLAGS", r"(\Flagged)")
        self.assertEqual(typ, "OK", d)
        m.logout()
        self.mbsync(rc)
        server = self.server_messages(user)
        flags3 = server[mids[2]][1].split()
        self.assertIn(b"\\Answered", flags3)
        self.assertIn(b"\\Seen", flags3)
        mine = self.local_by_mid(local)
        self.assertEqual(maildir_flags(mine[mids[1]][0]), "")

    def test_deletions_propagate_both_ways(self):
        user = "dot"
        for i in range(4):
            self.deliver(user, self.message(20 + i))
        self.sb.wait_messages(user, 4)
        rc, local = self.local_setup(user)
        self.mbsync(rc)
        mine = self.local_by_mid(local)
        mids = sorted(mine)
        self.assertEqual(len(mids), 4)
        # Local deletion: the file goes away.
        os.unlink(mine[mids[0]][0])
        # Server deletion: \Deleted and EXPUNGE by another client.
        server = self.server_messages(user)
        m = self.connect(user)
        m.select("INBOX")
        typ, d = m.uid("STORE", str(server[mids[1]][0]), "+FLAGS", r"(\Deleted)")
        self.assertEqual(typ, "OK", d)
        self.assertEqual(m.expunge()[0], "OK")
        m.logout()
        self.mbsync(rc)
        server = self.server_messages(user)
        mine = self.local_by_mid(local)
        self.assertEqual(set(server), {mids[2], mids[3]})
        self.assertEqual(set(mine), {mids[2], mids[3]})
        # A message flagged \Deleted locally (Maildir T) is expunged on both sides.
        path = mine[mids[2]][0]
        os.rename(path, path.split(":2,")[0].replace("/new/", "/cur/") + ":2,T")
        self.mbsync(rc)
        self.assertEqual(set(self.server_messages(user)), {mids[3]})
        self.assertEqual(set(self.local_by_mid(local)), {mids[3]})
        # The server's own Maildir agrees: one message left in INBOX.
        self.assertEqual(len(self.sb.messages(user)), 1)

    def test_folders_created_on_either_side_appear_on_the_other(self):
        user = "eve"
        rc, local = self.local_setup(user)
        self.mbsync(rc)
        # Locally: a plain folder, a nested one and one with non-ASCII letters
        # (Entwürfe, in its modified UTF-7 spelling, as isync 1.4 names it).
        proj = self.message(30)
        self.write_local(local, "Projects", "1700000000.2_1.host", lf(proj))
        self.write_local(local, "Projects/2026", "1700000000.3_1.host", lf(self.message(31)))
        entw = self.message(32)
        self.write_local(local, "Entw&APw-rfe", "1700000000.4_1.host", lf(entw), "S")
        # On the server: a folder named in Cyrillic ("Привет").
        m = self.connect(user)
        self.assertEqual(m.create("&BB8EQAQ4BDIENQRC-")[0], "OK")
        privet = self.message(33)
        typ, d = m.append("&BB8EQAQ4BDIENQRC-", None, None, privet)
        self.assertEqual(typ, "OK", d)
        m.logout()
        self.mbsync(rc)
        m = self.connect(user)
        typ, data = m.list('""', "*")
        names = [re.search(rb'"\." "?([^"]*)"?$', ln).group(1) for ln in data]
        for want in (b"Projects", b"Projects.2026", b"Entw&APw-rfe", b"&BB8EQAQ4BDIENQRC-"):
            self.assertIn(want, names)
        # The server keeps the folder in its Maildir++ directory, by that name.
        self.assertTrue(os.path.isdir(os.path.join(self.sb.maildir(user), ".Entw&APw-rfe")))
        self.assertTrue(os.path.isdir(os.path.join(self.sb.maildir(user), ".Projects.2026")))
        srv = self.server_messages(user, "Entw&APw-rfe")
        self.assertEqual(len(srv), 1)
        (uid, flags, body), = srv.values()
        self.assertEqual(strip_tuid(body), entw)
        self.assertIn(b"\\Seen", flags)
        self.assertEqual(len(self.server_messages(user, "Projects.2026")), 1)
        (uid, flags, body), = self.server_messages(user, "Projects").values()
        self.assertEqual(strip_tuid(body), proj)
        # And the server's folder arrived locally.
        got = self.local_by_mid(local, "&BB8EQAQ4BDIENQRC-")
        self.assertEqual(len(got), 1)
        self.assertEqual(strip_tuid(list(got.values())[0][1]), lf(privet))

    def test_second_run_without_changes_changes_nothing(self):
        user = "fay"
        for i in range(3):
            self.deliver(user, self.message(40 + i))
        self.sb.wait_messages(user, 3)
        rc, local = self.local_setup(user)
        self.write_local(local, "Archive", "1700000000.5_1.host", lf(self.message(43)), "S")
        self.mbsync(rc)
        before_local = self.local_snapshot(local)
        before_server = self.server_state(user)
        self.mbsync(rc)
        # Nothing moved: same local files (names carry mbsync's UIDs and the
        # flags), and on the server the same UIDNEXT and HIGHESTMODSEQ (no
        # APPEND, STORE or EXPUNGE happened) and the same UIDs and flags.
        self.assertEqual(self.local_snapshot(local), before_local)
        self.assertEqual(self.server_state(user), before_server)

    def test_uids_stay_valid_for_mbsync_across_restart_and_index_rebuild(self):
        """mbsync remembers UIDVALIDITY and UIDs; a restart or a rebuilt
        index must neither make it resync (UIDVALIDITY change) nor
        re-download or duplicate anything."""
        user = "gus"
        for i in range(3):
            self.deliver(user, self.message(50 + i))
        self.sb.wait_messages(user, 3)
        rc, local = self.local_setup(user)
        self.write_local(local, "Kept", "1700000000.6_1.host", lf(self.message(53)))
        self.mbsync(rc)
        self.mbsync(rc)
        before_local = self.local_snapshot(local)
        before = self.server_state(user)
        self.sb.stop()
        self.sb.start()
        self.mbsync(rc)
        self.assertEqual(self.local_snapshot(local), before_local)
        self.assertEqual(self.server_state(user), before)
        # Remove every folder's index database: the server rebuilds it.
        removed = 0
        for root, dirs, files in os.walk(self.sb.maildir(user)):
            for n in files:
                if n == "tegami-index.db":
                    os.unlink(os.path.join(root, n))
                    removed += 1
        self.assertGreaterEqual(removed, 2)
        out = self.mbsync(rc)
        self.assertNotIn("UIDVALIDITY", out.upper())
        self.assertEqual(self.local_snapshot(local), before_local)
        after = self.server_state(user)
        for name, (status, msgs) in before.items():
            self.assertIn(name, after)
            st_after, msgs_after = after[name]
            self.assertEqual(re.search(rb"UIDVALIDITY \d+", st_after).group(0),
                             re.search(rb"UIDVALIDITY \d+", status).group(0), name)
            # Same UIDs and flags; the modseqs may be new (a rebuild may only
            # raise them).
            nomodseq = lambda ms: [re.sub(rb" MODSEQ \(\d+\)", b"", x) for x in ms]  # noqa
            self.assertEqual(nomodseq(msgs_after), nomodseq(msgs), name)
        self.assertEqual(len(self.server_messages(user)), 3)

    def test_sync_over_implicit_tls_and_starttls_with_the_sandbox_certificate(self):
        for user, ssltype in (("hal", "IMAPS"), ("ida", "STARTTLS")):
            msg = self.message(60)
            self.deliver(user, msg)
            self.sb.wait_messages(user, 1)
            rc, local = self.local_setup(user, ssltype)
            out = self.mbsync(rc)
            self.assertNotIn("in the clear", out)
            mine = self.local_by_mid(local)
            self.assertEqual(len(mine), 1, ssltype)
            (path, data), = mine.values()
            self.assertTrue(strip_tuid(data).endswith(lf(msg)), (ssltype, data))
            self.write_local(local, "INBOX", "1700000000.7_1.host", lf(self.message(61)))
            self.mbsync(rc)
            self.assertEqual(len(self.server_messages(user)), 2, ssltype)


if __name__ == "__main__":
    unittest.main()
