"""End-to-end tests of the outbound SMTP client (smtp/), driven directly.

Each test writes a queue file into active/ of a running sandbox, sends the
"deliver" request of docs/protocols.md ("qmgr -> private/smtp") to the smtp
daemon over $queue_directory/private/smtp exactly as qmgr does, and checks
both the per-recipient reply and what a scripted SMTP server on loopback
(the `Peer` below) saw on the wire. The nexthop is always "[127.0.0.1]:PORT",
so no DNS is involved; MX selection is covered by test_outbound.py.
"""

import base64
import hashlib
import os
import random
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest

from dns_fixture import DnsServer
from harness import Sandbox, random_port

# ---------------------------------------------------------------------------
# the attr codec (docs/protocols.md) and a queue file writer
# (docs/architecture.md, "Queue file format")


def attr_encode(pairs):
    out = b""
    for name, value in pairs:
        if isinstance(value, str):
            value = value.encode()
        name = name.encode()
        out += b"%d:%s,%d:%s," % (len(name), name, len(value), value)
    return out + b"0:,"


def attr_read(sock, timeout=120):
    sock.settimeout(timeout)
    buf = b""
    pairs = []
    pos = 0

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("smtp closed the connection")
            buf += chunk

    def netstring():
        nonlocal pos
        while True:
            need(pos + 1)
            colon = buf.find(b":", pos)
            if colon >= 0:
                break
            need(len(buf) + 1)
        n = int(buf[pos:colon])
        need(colon + 1 + n + 1)
        value = buf[colon + 1:colon + 1 + n]
        assert buf[colon + 1 + n:colon + 2 + n] == b","
        pos = colon + 2 + n
        return value

    while True:
        name = netstring()
        if name == b"":
            return pairs
        pairs.append((name.decode(), netstring().decode(errors="replace")))


ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


def new_queue_id():
    return "T" + "".join(random.choice(ID_CHARS) for _ in range(15))


def queue_file(sender, rcpts, content, envid=None, ret=0, smtputf8=False):
    """rcpts: list of (address, orig, notify_bits). Returns (bytes, offset, size)."""
    def rec(t, data):
        if isinstance(data, str):
            data = data.encode()
        return t + struct.pack(">I", len(data)) + data

    out = b"TEGAMIQ1\n"
    out += rec(b"T", str(int(time.time())))
    out += rec(b"S", sender)
    if envid is not None or ret:
        out += rec(b"E", b"%d\0%s" % (ret, (envid or "").encode()))
    if smtputf8:
        out += rec(b"F", "1")
    for addr, orig, notify in rcpts:
        out += rec(b"R", b"P" + bytes([notify]) + addr.encode() + b"\0" + (orig or "").encode())
    out += b"M" + struct.pack(">Q", len(content))
    offset = len(out)
    out += content
    out += rec(b"X", b"")
    return out, offset, len(content)


NOTIFY_NEVER, NOTIFY_SUCCESS, NOTIFY_FAILURE, NOTIFY_DELAY = 1, 2, 4, 8

# ---------------------------------------------------------------------------
# a scripted SMTP server


class Conn:
    def __init__(self):
        self.commands = []  # (batch, line) as received
        self.messages = []  # raw DATA bytes as on the wire (dot-stuffed, CRLF)
        self.tls = False
        self.auth = []  # decoded credentials (user, password)


class Peer:
    """An SMTP server on 127.0.0.1 with scripted answers; records what it saw."""

    def __init__(self, ext=("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"),
                 tls_ext=None, greeting="220 peer.test ESMTP", ehlo_reply=None, rcpt=None,
                 mail_reply="250 2.1.0 Ok", data_reply="354 End data with <CR><LF>.<CR><LF>",
                 dot_reply="250 2.0.0 Ok: queued as PEER1", auth_reply="235 2.7.0 Authenticated",
                 certfile=None, keyfile=None, tls_break=False, raw_after_ehlo=None,
                 host="127.0.0.1", port=0, greeting_raw=None):
        self.ext = list(ext)
        self.tls_ext = list(tls_ext) if tls_ext is not None else None
        self.greeting = greeting
        self.ehlo_reply = ehlo_reply
        self.rcpt = rcpt or {}
        self.mail_reply = mail_reply
        self.data_reply = data_reply
        self.dot_reply = dot_reply
        self.auth_reply = auth_reply
        self.tls_break = tls_break
        self.raw_after_ehlo = raw_after_ehlo
        self.greeting_raw = greeting_raw
        self.ctx = None
        if certfile:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(certfile, keyfile)
        self.conns = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_safe, args=(s,), daemon=True).start()

    def _serve_safe(self, s):
        state = {"sock": s}
        try:
            self._serve(s, state)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            for sock in (state["sock"], s):
                try:
                    sock.close()
                except OSError:
                    pass

    def _serve(self, s, state):
        conn = Conn()
        with self.lock:
            self.conns.append(conn)
        s.settimeout(30)
        state.update({"buf": b"", "batch": 0})

        def readline():
            while b"\n" not in state["buf"]:
                chunk = state["sock"].recv(65536)
                if not chunk:
                    raise OSError("eof")
                state["batch"] += 1
                state["buf"] += chunk
            line, state["buf"] = state["buf"].split(b"\n", 1)
            return line + b"\n"

        def send(text):
            state["sock"].sendall(text.encode() + b"\r\n")

        if self.greeting_raw is not None:
            state["sock"].sendall(self.greeting_raw)
        else:
            send(self.greeting)
        if self.greeting_raw is None and not self.greeting.startswith("220"):
            readline()  # whatever comes (QUIT)
            send("221 bye")
            return
        ext = self.ext
        txn = {"mail": False, "rcpts": 0}
        while True:
            line = readline()
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            conn.commands.append((state["batch"], cmd))
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                if self.ehlo_reply:
                    send(self.ehlo_reply)
                    continue
                lines = ["peer.test hello"] + ext
                for i, l in enumerate(lines):
                    send("250%s%s" % ("-" if i < len(lines) - 1 else " ", l))
                if self.raw_after_ehlo is not None:
                    state["sock"].sendall(self.raw_after_ehlo)
                    return
            elif verb == "HELO":
                send("250 peer.test")
            elif verb == "STARTTLS":
                send("220 2.0.0 Ready to start TLS")
                if self.tls_break:
                    state["sock"].sendall(b"this is not a TLS server hello\r\n" * 4)
                    return
                state["sock"] = self.ctx.wrap_socket(state["sock"], server_side=True)
                state["buf"] = b""
                conn.tls = True
                if self.tls_ext is not None:
                    ext = self.tls_ext
            elif verb == "AUTH":
                parts = cmd.split()
                if parts[1].upper() == "PLAIN":
                    raw = base64.b64decode(parts[2])
                    _, user, pw = raw.split(b"\0")
                    conn.auth.append((user.decode(), pw.decode()))
                else:
                    send("334 VXNlcm5hbWU6")
                    user = base64.b64decode(readline().strip())
                    send("334 UGFzc3dvcmQ6")
                    pw = base64.b64decode(readline().strip())
                    conn.auth.append((user.decode(), pw.decode()))
                send(self.auth_reply)
            elif verb == "MAIL":
                send(self.mail_reply)
                txn = {"mail": self.mail_reply.startswith("2"), "rcpts": 0}
            elif verb == "RCPT":
                addr = cmd.split("<", 1)[1].split(">", 1)[0]
                reply = self.rcpt.get(addr, "250 2.1.5 Ok")
                if not txn["mail"]:
                    reply = "503 5.5.1 Error: need MAIL command"
                txn["rcpts"] += reply.startswith("2")
                send(reply)
            elif verb == "DATA":
                if not txn["rcpts"]:
                    send("554 5.5.1 Error: no valid recipients")
                    continue
                send(self.data_reply)
                if not self.data_reply.startswith("354"):
                    continue
                data = b""
                while True:
                    l = readline()
                    if l == b".\r\n":
                        break
                    data += l
                conn.messages.append(data)
                send(self.dot_reply)
            elif verb == "RSET":
                txn = {"mail": False, "rcpts": 0}
                send("250 2.0.0 Ok")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("502 5.5.2 Error: command not recognized")

    def wait_conns(self, n, timeout=10):
        deadline = time.time() + timeout
        while len(self.conns) < n and time.time() < deadline:
            time.sleep(0.02)
        return self.conns


# ---------------------------------------------------------------------------


MESSAGE = (b"From: alice@example.test\nTo: bob@remote.test\nSubject: test\n\n"
           b"first line\n.starts with a dot\n..two dots\nlast line\n")


def start_and_wait_for_qmgr(sb, action):
    """Run action (sb.start or sb.reload), then wait until the new qmgr has done its
    start-up recovery: it moves every file in active/ back to incoming/, which must
    not catch a test's queue file written into active/. An empty sentinel file put
    into active/ before the (re)start shows when that has happened (qmgr removes
    empty queue files, never delivers them)."""
    sentinel = os.path.join(sb.dir, "queue", "active", new_queue_id())
    open(sentinel, "wb").close()
    action()
    deadline = time.time() + 30
    while os.path.exists(sentinel) and time.time() < deadline:
        time.sleep(0.05)
    if os.path.exists(sentinel):
        raise AssertionError("qmgr did not finish its start-up recovery")


class SmtpClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(params={"smtp_connection_cache_time": "2s"})
        start_and_wait_for_qmgr(cls.sb, cls.sb.start)
        cls.cert = os.path.join(cls.sb.dir, "tls", "cert.pem")
        cls.key = os.path.join(cls.sb.dir, "tls", "key.pem")

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def setUp(self):
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()

    def peer(self, **kw):
        p = Peer(**kw)
        self.peers.append(p)
        return p

    def socket_path(self):
        return os.path.join(self.sb.dir, "queue", "private", "smtp")

    def reload(self):
        start_and_wait_for_qmgr(self.sb, self.sb.reload)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.socket_path())
        return s

    def request(self, nexthop, rcpts, content=MESSAGE, sender="alice@example.test", sock=None,
                **qf):
        """Queue a message in active/ and send one deliver request; returns
        ({index: {status, dsn, reason, relay}}, dest_status)."""
        rcpts = [r if isinstance(r, tuple) else (r, "", 0) for r in rcpts]
        qid = new_queue_id()
        data, offset, size = queue_file(sender, rcpts, content, **qf)
        path = os.path.join(self.sb.dir, "queue", "active", qid)
        with open(path, "wb") as f:
            f.write(data)
        pairs = [("request", "deliver"), ("queue_id", qid), ("sender", sender),
                 ("offset", str(offset)), ("size", str(size)), ("nexthop", nexthop)]
        for i, (addr, orig, _) in enumerate(rcpts):
            pairs += [("index", str(i)), ("rcpt", addr), ("orig", orig or "")]
        own = sock is None
        s = sock or self.connect()
        try:
            s.sendall(attr_encode(pairs))
            reply = attr_read(s)
        finally:
            if own:
                s.close()
            os.unlink(path)
        results, cur, dest = {}, None, None
        for name, value in reply:
            if name == "index":
                cur = results.setdefault(int(value), {})
            elif name in ("status", "dsn", "reason", "relay"):
                cur[name] = value
            elif name == "dest_status":
                dest = value
        self.assertEqual(reply[-1], ("end", "1"))
        return results, dest

    def commands(self, conn, verb):
        return [c for _, c in conn.commands if c.upper().startswith(verb)]

    # --- the transaction ---------------------------------------------------

    def test_pipelining_sends_mail_rcpt_and_data_in_one_write(self):
        p = self.peer()
        res, dest = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test", "carol@remote.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(res[1]["status"], "2", res)
        self.assertEqual(res[0]["dsn"], "2.0.0")
        self.assertIn("queued as PEER1", res[0]["reason"])
        self.assertEqual(res[0]["relay"], "127.0.0.1[127.0.0.1]:%d" % p.port)
        self.assertEqual(dest, "ok")
        conn = p.wait_conns(1)[0]
        batches = {b for b, c in conn.commands
                   if c.split(" ")[0].upper() in ("MAIL", "RCPT", "DATA")}
        self.assertEqual(len(batches), 1, conn.commands)

    def test_quoted_local_part_with_angle_brackets_is_sent_as_is(self):
        # RFC 5321 qtextSMTP allows '<' and '>' inside quotes; such a recipient
        # must be delivered, not make smtp drop qmgr's connection.
        p = self.peer()
        res, dest = self.request("[127.0.0.1]:%d" % p.port, ['"a<b>c"@remote.test'])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(dest, "ok")
        conn = p.wait_conns(1)[0]
        self.assertIn('RCPT TO:<"a<b>c"@remote.test>', [c for _, c in conn.commands])

    def test_without_pipelining_each_command_waits_for_its_reply(self):
        p = self.peer(ext=("SIZE 10240000", "8BITMIME"))
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test", "carol@remote.test"])
        self.assertEqual([res[0]["status"], res[1]["status"]], ["2", "2"], res)
        conn = p.wait_conns(1)[0]
        batches = [b for b, c in conn.commands
                   if c.split(" ")[0].upper() in ("MAIL", "RCPT", "DATA")]
        self.assertEqual(len(set(batches)), 4, conn.commands)

    def test_content_gets_crlf_and_dot_stuffing(self):
        p = self.peer()
        content = b"Subject: x\n\n.\n.x\nno newline at end"
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"], content=content)
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(p.conns[0].messages[0],
                         b"Subject: x\r\n\r\n..\r\n..x\r\nno newline at end\r\n")

    def test_big_message_with_dot_line_at_a_chunk_boundary(self):
        p = self.peer()
        head = b"Subject: big\n\n"
        first = b"a" * (65536 - len(head) - 1) + b"\n"  # the next line starts at 64 KiB
        content = head + first + b".dot at the boundary\n" + (b"x" * 999 + b"\n") * 3000
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"], content=content)
        self.assertEqual(res[0]["status"], "2", res)
        expect = content.replace(b"\n", b"\r\n").replace(b"\r\n.dot", b"\r\n..dot")
        self.assertEqual(p.conns[0].messages[0], expect)

    def test_ipv6_address_literal_nexthop(self):
        p = self.peer(host="::1")
        res, _ = self.request("[IPv6:::1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(res[0]["relay"], "::1[::1]:%d" % p.port)

    def test_silent_server_times_out_and_defers(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)  # accepts (in the kernel) but never says anything
        self.sb.set_param("smtp_helo_timeout", "1s")
        self.reload()
        try:
            t0 = time.time()
            res, dest = self.request("[127.0.0.1]:%d" % lsock.getsockname()[1], ["bob@remote.test"])
            elapsed = time.time() - t0
        finally:
            lsock.close()
            self.sb.set_param("smtp_helo_timeout", "300s")
            self.reload()
        self.assertEqual(res[0]["status"], "4", res)
        self.assertIn("timed out while receiving the initial server greeting", res[0]["reason"])
        self.assertEqual(dest, "dead")
        self.assertLess(elapsed, 10)

    def test_per_recipient_results_from_rcpt_replies(self):
        p = self.peer(rcpt={"gone@remote.test": "550 5.1.1 <gone@remote.test>: unknown user",
                            "full@remote.test": "452 4.2.2 mailbox full"})
        res, dest = self.request("[127.0.0.1]:%d" % p.port,
                                 ["bob@remote.test", "gone@remote.test", "full@remote.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(res[1]["status"], "5")
        self.assertEqual(res[1]["dsn"], "5.1.1")
        self.assertEqual(res[1]["reason"],
                         "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <gone@remote.test>: "
                         "unknown user (in reply to RCPT TO command)")
        self.assertEqual(res[2]["status"], "4")
        self.assertEqual(res[2]["dsn"], "4.2.2")
        self.assertEqual(dest, "ok")
        self.assertEqual(len(p.conns[0].messages), 1)

    def test_mail_from_rejection_applies_to_every_recipient(self):
        p = self.peer(mail_reply="553 5.7.1 sender rejected")
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test", "carol@remote.test"])
        for i in (0, 1):
            self.assertEqual(res[i]["status"], "5", res)
            self.assertIn("(in reply to MAIL FROM command)", res[i]["reason"])
        self.assertEqual(p.conns[0].messages, [])

    def test_rejection_after_final_dot_applies_to_accepted_recipients(self):
        p = self.peer(dot_reply="554 5.7.1 spam",
                      rcpt={"gone@remote.test": "550 5.1.1 unknown"})
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test", "gone@remote.test"])
        self.assertEqual(res[0]["status"], "5")
        self.assertIn("554 5.7.1 spam (in reply to end of DATA command)", res[0]["reason"])
        self.assertIn("(in reply to RCPT TO command)", res[1]["reason"])

    def test_helo_fallback_when_ehlo_is_rejected(self):
        p = self.peer(ehlo_reply="500 5.5.1 command unrecognized")
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "2", res)
        conn = p.conns[0]
        self.assertEqual(len(self.commands(conn, "HELO ")), 1, conn.commands)
        # no ESMTP: no SIZE=, no BODY=
        self.assertEqual(self.commands(conn, "MAIL"), ["MAIL FROM:<alice@example.test>"])

    def test_peer_size_limit_smaller_than_message_bounces_without_sending(self):
        p = self.peer(ext=("PIPELINING", "SIZE 100"))
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"],
                              content=b"Subject: big\n\n" + b"x" * 500 + b"\n")
        self.assertEqual(res[0]["status"], "5", res)
        self.assertEqual(res[0]["dsn"], "5.3.4")
        self.assertIn("exceeds size limit 100", res[0]["reason"])
        self.assertEqual(self.commands(p.conns[0], "MAIL"), [])

    def test_size_is_announced_in_mail_from(self):
        p = self.peer()
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "2")
        mail = self.commands(p.conns[0], "MAIL")[0]
        size = int(mail.split("SIZE=")[1].split()[0])
        self.assertEqual(size, len(MESSAGE) + MESSAGE.count(b"\n"))

    def test_8bit_to_peer_with_8bitmime_is_sent_as_is_with_body_param(self):
        p = self.peer()
        content = "Subject: caf\u00e9\n\nna\u00efve text\n".encode()
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"], content=content)
        self.assertEqual(res[0]["status"], "2", res)
        self.assertIn("BODY=8BITMIME", self.commands(p.conns[0], "MAIL")[0])
        self.assertIn("na\u00efve".encode(), p.conns[0].messages[0])

    def test_8bit_to_peer_without_8bitmime_arrives_as_quoted_printable(self):
        p = self.peer(ext=("PIPELINING", "SIZE 10240000"))
        content = ("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                   "Subject: hi\n\nna\u00efve text\n").encode()
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"], content=content)
        self.assertEqual(res[0]["status"], "2", res)
        self.assertNotIn("BODY=", self.commands(p.conns[0], "MAIL")[0])
        data = p.conns[0].messages[0]
        self.assertTrue(all(b < 0x80 for b in data), data)
        self.assertIn(b"Content-Transfer-Encoding: quoted-printable", data)
        self.assertIn(b"na=C3=AFve", data)

    def test_smtputf8_mail_to_peer_without_smtputf8_bounces(self):
        p = self.peer()
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["b\u00f6b@remote.test"],
                              sender="al\u00efce@example.test", smtputf8=True)
        self.assertEqual(res[0]["status"], "5", res)
        self.assertEqual(res[0]["dsn"], "5.6.7")
        self.assertEqual(self.commands(p.conns[0], "MAIL"), [])

    def test_smtputf8_mail_to_peer_with_smtputf8_says_so(self):
        p = self.peer(ext=("PIPELINING", "8BITMIME", "SMTPUTF8"))
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["b\u00f6b@remote.test"],
                              sender="al\u00efce@example.test", smtputf8=True)
        self.assertEqual(res[0]["status"], "2", res)
        mail = self.commands(p.conns[0], "MAIL")[0]
        self.assertIn("SMTPUTF8", mail)
        self.assertIn("<al\u00efce@example.test>", mail)

    def test_dsn_parameters_are_passed_when_offered(self):
        p = self.peer(ext=("PIPELINING", "DSN"))
        rcpts = [("bob@remote.test", "rfc822;bob+x=y@remote.test", NOTIFY_SUCCESS | NOTIFY_FAILURE),
                 ("carol@remote.test", "", NOTIFY_NEVER)]
        res, _ = self.request("[127.0.0.1]:%d" % p.port, rcpts, envid="id 42", ret=2)
        self.assertEqual(res[0]["status"], "2", res)
        conn = p.conns[0]
        self.assertEqual(self.commands(conn, "MAIL"),
                         ["MAIL FROM:<alice@example.test> RET=HDRS ENVID=id+2042"])
        self.assertEqual(self.commands(conn, "RCPT"),
                         ["RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE "
                          "ORCPT=rfc822;bob+2Bx+3Dy@remote.test",
                          "RCPT TO:<carol@remote.test> NOTIFY=NEVER"])

    def test_dsn_parameters_are_not_passed_when_not_offered(self):
        p = self.peer(ext=("PIPELINING",))
        rcpts = [("bob@remote.test", "rfc822;bob@remote.test", NOTIFY_SUCCESS)]
        res, _ = self.request("[127.0.0.1]:%d" % p.port, rcpts, envid="abc", ret=1)
        self.assertEqual(res[0]["status"], "2", res)
        conn = p.conns[0]
        self.assertEqual(self.commands(conn, "MAIL"), ["MAIL FROM:<alice@example.test>"])
        self.assertEqual(self.commands(conn, "RCPT"), ["RCPT TO:<bob@remote.test>"])

    # --- hosts and sessions ---------------------------------------------------

    def test_connection_refused_defers_with_dead_destination(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nobody listens there now
        res, dest = self.request("[127.0.0.1]:%d" % port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.4.1")
        self.assertIn("connect to 127.0.0.1[127.0.0.1]:%d" % port, res[0]["reason"])
        self.assertEqual(dest, "dead")

    def test_greeting_4xx_defers_with_dead_destination(self):
        p = self.peer(greeting="421 4.3.2 too busy")
        res, dest = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertIn("refused to talk to me: 421 4.3.2 too busy", res[0]["reason"])
        self.assertEqual(dest, "dead")

    def test_greeting_5xx_at_the_only_host_defers_rather_than_bounces(self):
        p = self.peer(greeting="554 5.7.1 go away")
        res, dest = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.7.1")
        self.assertIn("refused to talk to me: 554 5.7.1 go away", res[0]["reason"])
        self.assertEqual(dest, "dead")

    def test_malformed_reply_defers_and_the_daemon_survives(self):
        p = self.peer(raw_after_ehlo=b"2x0 what is this\r\n")
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "4", res)
        # the daemon still serves the next request
        p2 = self.peer()
        res, _ = self.request("[127.0.0.1]:%d" % p2.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "2", res)

    def test_over_long_reply_line_is_cut_and_the_session_goes_on(self):
        p = self.peer(greeting_raw=b"220 " + b"x" * 5000 + b"\r\n")
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "2", res)

    def test_endless_reply_line_is_refused(self):
        p = self.peer(greeting_raw=b"220 " + b"x" * 1200000)
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.5.0")
        self.assertIn("reply line too long", res[0]["reason"])

    def test_loop_to_own_smtp_listener_bounces(self):
        res, _ = self.request("[127.0.0.1]:%d" % self.sb.port("smtp"), ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "5", res)
        self.assertEqual(res[0]["dsn"], "5.4.6")
        self.assertIn("loops back to myself", res[0]["reason"])

    def test_connection_is_reused_for_the_same_nexthop(self):
        p = self.peer()
        s = self.connect()
        try:
            r1, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"], sock=s)
            r2, _ = self.request("[127.0.0.1]:%d" % p.port, ["carol@remote.test"], sock=s)
        finally:
            s.close()
        self.assertEqual([r1[0]["status"], r2[0]["status"]], ["2", "2"])
        self.assertEqual(len(p.conns), 1, [c.commands for c in p.conns])
        conn = p.conns[0]
        self.assertEqual(len(conn.messages), 2)
        verbs = [c.split(" ")[0].split(":")[0].upper() for _, c in conn.commands]
        self.assertEqual(verbs[:9], ["EHLO", "MAIL", "RCPT", "DATA", "RSET",
                                     "MAIL", "RCPT", "DATA", "RSET"])
        self.sb.expect_log(r"reusing the connection to 127\.0\.0\.1\[127\.0\.0\.1\]:%d"
                           % p.port)

    def test_cached_connection_is_not_used_for_another_nexthop(self):
        p1, p2 = self.peer(), self.peer()
        s = self.connect()
        try:
            r1, _ = self.request("[127.0.0.1]:%d" % p1.port, ["bob@remote.test"], sock=s)
            r2, _ = self.request("[127.0.0.1]:%d" % p2.port, ["carol@remote.test"], sock=s)
        finally:
            s.close()
        self.assertEqual([r1[0]["status"], r2[0]["status"]], ["2", "2"])
        self.assertEqual(self.commands(p1.conns[0], "QUIT"), ["QUIT"])
        self.assertEqual(len(p2.conns[0].messages), 1)

    def test_cached_connection_is_closed_after_the_cache_time(self):
        p = self.peer()
        s = self.connect()
        try:
            r1, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"], sock=s)
            deadline = time.time() + 10
            while time.time() < deadline and not self.commands(p.conns[0], "QUIT"):
                time.sleep(0.1)
            self.assertEqual(self.commands(p.conns[0], "QUIT"), ["QUIT"])
            r2, _ = self.request("[127.0.0.1]:%d" % p.port, ["carol@remote.test"], sock=s)
        finally:
            s.close()
        self.assertEqual([r1[0]["status"], r2[0]["status"]], ["2", "2"])
        self.assertEqual(len(p.conns), 2)

    # --- TLS and SASL ---------------------------------------------------------

    def test_opportunistic_starttls_is_used_when_offered(self):
        p = self.peer(ext=("PIPELINING", "STARTTLS"), tls_ext=("PIPELINING",),
                      certfile=self.cert, keyfile=self.key)
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertTrue(p.conns[0].tls)
        self.assertEqual(len(self.commands(p.conns[0], "EHLO")), 2)
        self.sb.expect_log(r"Anonymous TLS connection established to "
                                        r"127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]" % p.port)

    def test_failed_handshake_at_may_retries_once_without_tls(self):
        p = self.peer(ext=("PIPELINING", "STARTTLS"), tls_break=True)
        res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(len(p.conns), 2)
        self.assertEqual(self.commands(p.conns[1], "STARTTLS"), [])
        self.assertEqual(len(p.conns[1].messages), 1)

    def auth_setup(self, nexthop, tls_only="yes"):
        with open(os.path.join(self.sb.dir, "sasl_passwd"), "w") as f:
            f.write("%s relayuser:s3cret pass\n" % nexthop)
        self.sb.mailctl("map", "build", os.path.join(self.sb.dir, "sasl_passwd"), check=True)
        self.sb.set_param("smtp_sasl_auth_enable", "yes")
        self.sb.set_param("smtp_sasl_password_maps", "hash:" + os.path.join(self.sb.dir,
                                                                            "sasl_passwd"))
        self.sb.set_param("smtp_sasl_tls_only", tls_only)
        self.reload()

    def auth_teardown(self):
        self.sb.set_param("smtp_sasl_auth_enable", "no")
        self.reload()

    def test_sasl_auth_to_relayhost_over_starttls(self):
        p = self.peer(ext=("PIPELINING", "STARTTLS"), tls_ext=("PIPELINING", "AUTH LOGIN PLAIN"),
                      certfile=self.cert, keyfile=self.key)
        nexthop = "[127.0.0.1]:%d" % p.port
        self.auth_setup(nexthop)
        try:
            res, _ = self.request(nexthop, ["bob@remote.test"])
        finally:
            self.auth_teardown()
        self.assertEqual(res[0]["status"], "2", res)
        conn = p.conns[0]
        self.assertTrue(conn.tls)
        self.assertEqual(conn.auth, [("relayuser", "s3cret pass")])
        self.assertEqual(len(self.commands(conn, "AUTH PLAIN")), 1)

    def test_sasl_password_found_by_host_name_when_nexthop_has_no_entry(self):
        p = self.peer(ext=("PIPELINING", "STARTTLS"), tls_ext=("PIPELINING", "AUTH PLAIN"),
                      certfile=self.cert, keyfile=self.key)
        self.auth_setup("127.0.0.1")
        try:
            res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        finally:
            self.auth_teardown()
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(p.conns[0].auth, [("relayuser", "s3cret pass")])

    def test_sasl_password_is_never_sent_without_tls(self):
        p = self.peer(ext=("PIPELINING", "AUTH PLAIN LOGIN"))
        nexthop = "[127.0.0.1]:%d" % p.port
        self.auth_setup(nexthop)
        try:
            res, _ = self.request(nexthop, ["bob@remote.test"])
        finally:
            self.auth_teardown()
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(self.commands(p.conns[0], "AUTH"), [])
        self.sb.expect_log_text("not sending SASL credentials")

    def test_sasl_login_when_only_login_is_offered_and_535_defers(self):
        p = self.peer(ext=("PIPELINING", "AUTH LOGIN"), auth_reply="535 5.7.8 bad credentials")
        nexthop = "[127.0.0.1]:%d" % p.port
        self.auth_setup(nexthop, tls_only="no")
        try:
            res, dest = self.request(nexthop, ["bob@remote.test"])
        finally:
            self.auth_teardown()
        self.assertEqual(p.conns[0].auth, [("relayuser", "s3cret pass")])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.7.0")
        self.assertIn("535 5.7.8 bad credentials", res[0]["reason"])
        self.assertEqual(self.commands(p.conns[0], "MAIL"), [])

    def test_encrypt_level_defers_when_starttls_is_not_offered(self):
        p = self.peer(ext=("PIPELINING",))
        with open(os.path.join(self.sb.dir, "tls_policy"), "w") as f:
            f.write("127.0.0.1 encrypt\n")
        self.sb.mailctl("map", "build", os.path.join(self.sb.dir, "tls_policy"), check=True)
        self.sb.set_param("smtp_tls_policy_maps", "hash:" + os.path.join(self.sb.dir,
                                                                         "tls_policy"))
        self.reload()
        try:
            res, _ = self.request("[127.0.0.1]:%d" % p.port, ["bob@remote.test"])
        finally:
            self.sb.set_param("smtp_tls_policy_maps", "")
            self.reload()
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.7.4")
        self.assertIn("TLS is required, but was not offered", res[0]["reason"])
        self.assertEqual(self.commands(p.conns[0], "MAIL"), [])

    def with_policy(self, policy, cafile, fn):
        with open(os.path.join(self.sb.dir, "tls_policy"), "w") as f:
            f.write(policy)
        self.sb.mailctl("map", "build", os.path.join(self.sb.dir, "tls_policy"), check=True)
        self.sb.set_param("smtp_tls_policy_maps", "hash:" + os.path.join(self.sb.dir,
                                                                         "tls_policy"))
        self.sb.set_param("smtp_tls_CAfile", cafile)
        self.reload()
        try:
            return fn()
        finally:
            self.sb.set_param("smtp_tls_policy_maps", "")
            self.sb.set_param("smtp_tls_CAfile", "")
            self.reload()

    def test_verify_level_with_trusted_certificate_and_matching_name(self):
        p = self.peer(ext=("PIPELINING", "STARTTLS"), tls_ext=("PIPELINING",),
                      certfile=self.cert, keyfile=self.key)
        res, _ = self.with_policy("localhost verify\n", self.cert, lambda: self.request(
            "[localhost]:%d" % p.port, ["bob@remote.test"]))
        self.assertEqual(res[0]["status"], "2", res)
        self.assertTrue(p.conns[-1].tls)
        self.sb.expect_log_text("Verified TLS connection established to localhost[127.0.0.1]:%d"
                                % p.port)

    def test_verify_level_with_untrusted_certificate_defers_without_plain_text(self):
        p = self.peer(ext=("PIPELINING", "STARTTLS"), tls_ext=("PIPELINING",),
                      certfile=self.cert, keyfile=self.key)
        # the system's CA store does not know the sandbox's self-signed certificate
        res, _ = self.with_policy("localhost verify\n", "", lambda: self.request(
            "[localhost]:%d" % p.port, ["bob@remote.test"]))
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.7.5")
        self.assertTrue(p.conns)
        for c in p.conns:
            self.assertEqual(self.commands(c, "MAIL"), [])

    # --- the qmgr protocol ------------------------------------------------------

    def test_malformed_nexthop_defers_with_4_3_5(self):
        for bad in ("[127.0.0.1", "[127.0.0.1]:0", "host:99999", "bad host", "[x]y"):
            res, _ = self.request(bad, ["bob@remote.test"])
            self.assertEqual((res[0]["status"], res[0]["dsn"]), ("4", "4.3.5"), bad)
        self.sb.expect_log_text("malformed nexthop")

    def test_recipient_with_crlf_is_a_protocol_error(self):
        s = self.connect()
        try:
            s.sendall(attr_encode([("request", "deliver"), ("queue_id", new_queue_id()),
                                   ("sender", "a@b.test"), ("offset", "0"), ("size", "0"),
                                   ("nexthop", "[127.0.0.1]:1"), ("index", "0"),
                                   ("rcpt", "x@y.test>\r\nRSET"), ("orig", "")]))
            s.settimeout(10)
            self.assertEqual(s.recv(100), b"")
        finally:
            s.close()
        self.sb.expect_log_text("protocol error: malformed recipient list or sender")

    def test_malformed_request_closes_the_connection(self):
        s = self.connect()
        try:
            s.sendall(attr_encode([("request", "deliver"), ("queue_id", "../etc"),
                                   ("sender", ""), ("offset", "0"), ("size", "0"),
                                   ("nexthop", "[127.0.0.1]:1")]))
            s.settimeout(10)
            self.assertEqual(s.recv(100), b"")
        finally:
            s.close()
        self.sb.expect_log_text("protocol error: bad or missing queue_id")


def free_port(hosts):
    """A TCP port free on every one of hosts."""
    for _ in range(200):
        port = random_port()
        ok = True
        for h in hosts:
            s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET)
            try:
                s.bind((h, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise RuntimeError("no free port")


class SmtpClientDnsTest(unittest.TestCase):
    """Destinations found through DNS (an unbound server on loopback, see
    dns_fixture.py): MX order and fallback, no MX, DNS failures."""

    ZONES = {
        "fallback.test": ["fallback.test. MX 10 mx1.fallback.test.",
                          "fallback.test. MX 20 mx2.fallback.test.",
                          "mx1.fallback.test. A 127.0.0.62",
                          "mx2.fallback.test. A 127.0.0.63"],
        "noMX.test": ["nomx.test. A 127.0.0.63"],
        "dual.test": ["dual.test. MX 10 mx.dual.test.",
                      "mx.dual.test. AAAA ::1",
                      "mx.dual.test. A 127.0.0.63"],
    }

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer(cls.ZONES, nxdomain=["gone.test"], servfail=["broken.test"]).start()
        try:
            cls.port = free_port(["127.0.0.62", "127.0.0.63", "::1"])
            cls.sb = Sandbox(params={"resolver_address": cls.dns.address,
                                     "smtp_port": str(cls.port)})
            start_and_wait_for_qmgr(cls.sb, cls.sb.start)
        except BaseException:
            cls.dns.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()
        cls.dns.stop()

    def setUp(self):
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()

    def peer(self, host, **kw):
        p = Peer(host=host, port=self.port, **kw)
        self.peers.append(p)
        return p

    request = SmtpClientTest.request
    connect = SmtpClientTest.connect
    socket_path = SmtpClientTest.socket_path
    commands = SmtpClientTest.commands

    def test_5xx_greeting_of_first_mx_falls_back_to_the_next(self):
        p1 = self.peer("127.0.0.62", greeting="554 5.3.2 not now, not ever")
        p2 = self.peer("127.0.0.63")
        res, dest = self.request("fallback.test", ["bob@fallback.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(res[0]["relay"], "mx2.fallback.test[127.0.0.63]:%d" % self.port)
        self.assertEqual(len(p1.conns), 1)
        self.assertEqual(len(p2.conns[0].messages), 1)
        self.assertEqual(dest, "ok")

    def test_rcpt_4xx_at_first_mx_is_retried_at_the_next(self):
        p1 = self.peer("127.0.0.62", rcpt={"bob@fallback.test": "451 4.3.0 try later"})
        p2 = self.peer("127.0.0.63")
        res, _ = self.request("fallback.test", ["bob@fallback.test", "carol@fallback.test"])
        self.assertEqual([res[0]["status"], res[1]["status"]], ["2", "2"], res)
        self.assertEqual(self.commands(p2.conns[0], "RCPT"), ["RCPT TO:<bob@fallback.test>"])
        self.assertEqual(len(p1.conns[0].messages), 1)

    def test_all_mx_hosts_down_defers_with_the_last_error(self):
        res, dest = self.request("fallback.test", ["bob@fallback.test"])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.4.1")
        self.assertIn("connect to mx2.fallback.test[127.0.0.63]:%d" % self.port,
                      res[0]["reason"])
        self.assertEqual(dest, "dead")

    def test_domain_without_mx_gets_mail_at_its_address(self):
        p = self.peer("127.0.0.63")
        res, _ = self.request("nomx.test", ["bob@nomx.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(res[0]["relay"], "nomx.test[127.0.0.63]:%d" % self.port)
        self.assertEqual(len(p.conns[0].messages), 1)

    def test_ipv6_address_is_tried_before_ipv4(self):
        p6 = self.peer("::1", greeting="421 4.3.2 busy")
        p4 = self.peer("127.0.0.63")
        res, _ = self.request("dual.test", ["bob@dual.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(len(p6.conns), 1)
        self.assertEqual(res[0]["relay"], "mx.dual.test[127.0.0.63]:%d" % self.port)

    def test_nxdomain_bounces_with_5_1_2(self):
        res, dest = self.request("gone.test", ["bob@gone.test"])
        self.assertEqual(res[0]["status"], "5", res)
        self.assertEqual(res[0]["dsn"], "5.1.2")
        self.assertEqual(res[0]["relay"], "none")

    def test_dns_failure_defers_with_4_4_3(self):
        res, dest = self.request("broken.test", ["bob@broken.test"])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.4.3")
        self.assertEqual(dest, "dead")


class SignedDnsServer(DnsServer):
    """The DNS fixture serving one DNSSEC-signed zone (unbound auth-zone, signed here
    with ldns-keygen/ldns-signzone); trust_anchor is the file of its DS record."""

    def __init__(self, zone, records):
        super().__init__({})
        self.zone = zone
        origin = "$ORIGIN %s.\n$TTL 300\n" % zone
        soa = "@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n@ IN NS ns.%s.\n" \
              "ns IN A 127.0.0.1\n" % (zone, zone, zone)
        path = os.path.join(self.dir, "zone")
        with open(path, "w") as f:
            f.write(origin + soa + "".join(r + "\n" for r in records))
        key = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone], cwd=self.dir,
                             capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["ldns-signzone", "-n", path, key], cwd=self.dir, check=True,
                       capture_output=True)
        self.signed = path + ".signed"
        self.trust_anchor = os.path.join(self.dir, key + ".ds")

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf) as f:
            text = f.read()
        server, rest = text.split("remote-control:", 1)
        server += '  local-zone: "test." nodefault\n'
        server += 'auth-zone:\n  name: "%s."\n  zonefile: "%s"\n  for-downstream: yes\n' \
                  '  for-upstream: yes\n  fallback-enabled: no\n' % (self.zone, self.signed)
        with open(self.conf, "w") as f:
            f.write(server + "remote-control:" + rest)


def spki_sha256(certfile):
    """The TLSA 3 1 1 association data of a certificate (SHA-256 of its public key)."""
    pub = subprocess.run(["openssl", "x509", "-in", certfile, "-noout", "-pubkey"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


class SmtpClientDaneTest(unittest.TestCase):
    """smtp_tls_security_level = dane against a DNSSEC-signed zone (RFC 7672)."""

    GOOD, BAD, NOTLSA = "127.0.0.64", "127.0.0.65", "127.0.0.66"

    @classmethod
    def setUpClass(cls):
        cls.port = free_port([cls.GOOD, cls.BAD, cls.NOTLSA])
        cls.sb = Sandbox()
        cls.dns = None
        try:
            cls.cert = os.path.join(cls.sb.dir, "tls", "cert.pem")
            cls.key = os.path.join(cls.sb.dir, "tls", "key.pem")
            good = spki_sha256(cls.cert)
            p = cls.port
            cls.dns = SignedDnsServer("dane.test", [
                "good IN MX 10 mx.good", "mx.good IN A %s" % cls.GOOD,
                "_%d._tcp.mx.good IN TLSA 3 1 1 %s" % (p, good),
                "bad IN MX 10 mx.bad", "mx.bad IN A %s" % cls.BAD,
                "_%d._tcp.mx.bad IN TLSA 3 1 1 %s" % (p, "00" * 32),
                "plain IN MX 10 mx.plain", "mx.plain IN A %s" % cls.NOTLSA,
            ]).start()
            for name, value in {"resolver_address": cls.dns.address, "smtp_port": str(p),
                                "smtp_tls_security_level": "dane",
                                "smtp_dns_trust_anchor_file": cls.dns.trust_anchor}.items():
                cls.sb.set_param(name, value)
            start_and_wait_for_qmgr(cls.sb, cls.sb.start)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()
        if cls.dns:
            cls.dns.stop()

    def setUp(self):
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()

    def peer(self, host, **kw):
        p = Peer(host=host, port=self.port, **kw)
        self.peers.append(p)
        return p

    request = SmtpClientTest.request
    connect = SmtpClientTest.connect
    socket_path = SmtpClientTest.socket_path
    commands = SmtpClientTest.commands

    def tls_peer(self, host):
        return self.peer(host, ext=("PIPELINING", "STARTTLS"), tls_ext=("PIPELINING",),
                         certfile=self.cert, keyfile=self.key)

    def test_matching_tlsa_record_gives_a_verified_session(self):
        p = self.tls_peer(self.GOOD)
        res, _ = self.request("good.dane.test", ["bob@good.dane.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertTrue(p.conns[0].tls)
        self.sb.expect_log_text("Verified TLS connection established to mx.good.dane.test[%s]:%d"
                                % (self.GOOD, self.port))

    def test_mismatching_tlsa_record_defers_and_never_falls_back_to_plain_text(self):
        p = self.tls_peer(self.BAD)
        res, dest = self.request("bad.dane.test", ["bob@bad.dane.test"])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.7.5")
        self.assertEqual(len(p.conns), 1)  # no retry without TLS
        self.assertEqual(self.commands(p.conns[0], "MAIL"), [])

    def test_tlsa_but_no_starttls_defers(self):
        p = self.peer(self.GOOD, ext=("PIPELINING",))
        res, _ = self.request("good.dane.test", ["bob@good.dane.test"])
        self.assertEqual(res[0]["status"], "4", res)
        self.assertEqual(res[0]["dsn"], "4.7.4")
        self.assertEqual(self.commands(p.conns[0], "MAIL"), [])

    def test_secure_zone_without_tlsa_behaves_as_may(self):
        p = self.peer(self.NOTLSA, ext=("PIPELINING",))
        res, _ = self.request("plain.dane.test", ["bob@plain.dane.test"])
        self.assertEqual(res[0]["status"], "2", res)
        self.assertEqual(len(p.conns[0].messages), 1)


if __name__ == "__main__":
    unittest.main()
