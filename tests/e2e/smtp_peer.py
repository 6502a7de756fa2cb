"""A controllable SMTP server on loopback, to play the remote MX in tests.

It stands in for "some other mail host" where a real second tegami
instance cannot easily produce the behaviour a test needs (a 451, a 550
for one recipient only, a peer that never answers). It speaks plain
RFC 5321 with EHLO, PIPELINING-free, optional STARTTLS (RFC 3207), and
records everything it saw so tests can assert on it.

Typical use::

    from smtp_peer import SmtpPeer, make_cert

    peer = SmtpPeer(host="127.0.0.4", port=offset + 25,
                    rcpt_reply={"bad@c.test": (550, "5.1.1 no such user")})
    peer.start()
    try:
        ... make tegami deliver to it ...
        t = peer.wait_transactions(1, timeout=30)[0]
        assert t.rcpts == ["good@c.test"] and t.tls is False
    finally:
        peer.stop()

Constructor arguments (all keyword, all optional; every one is also a
public attribute that may be changed while the peer runs, e.g.
``peer.rcpt_reply = (250, "2.1.5 ok")`` to switch from 451 to accepting):

  host, port     where to listen (port 0 = any free port; read ``peer.port``)
  hostname       name in the greeting and the EHLO reply (default "peer.test")
  greeting       (code, text) of the banner; a code >= 400 makes the peer
                 close the connection after the banner (or after QUIT)
  ehlo_reply     (code, text) for EHLO (default: 250 with the extensions
                 8BITMIME, SIZE, ENHANCEDSTATUSCODES, and STARTTLS /
                 PIPELINING when enabled)
  helo_reply     (code, text) for HELO (default 250)
  pipelining     advertise PIPELINING (RFC 2920); commands are read one
                 line at a time, so pipelined commands just work
  mail_reply     (code, text) for MAIL FROM, or callable(sender) -> (code, text)
  rcpt_reply     (code, text) for every RCPT; or a dict
                 {address (case-insensitive): (code, text)} with the default
                 reply under the key None (250 if absent); or
                 callable(address) -> (code, text)
  data_reply     (code, text) after the end of DATA, or
                 callable(Transaction) -> (code, text)
  starttls       offer and accept STARTTLS (needs certfile/keyfile)
  certfile, keyfile  PEM files for STARTTLS (make_cert() creates a pair)
  hang           None; "greeting": accept and never send a byte;
                 "data": read the message but never answer the final dot;
                 a hung connection is held open until stop()
  max_line       longest command line accepted (default 4096)

Replies are given as (code, text); the text may hold several lines
separated by "\\n" (sent as a multi-line reply). To misbehave, a reply
(from any rule, the greeting included) may instead be:
  bytes          sent verbatim (garbage, broken multi-line replies, huge
                 lines, a reply without CRLF ...);
  SmtpPeer.DROP  close the connection at once without answering.

What is recorded (read under no lock; lists only ever grow):

  peer.connections   list of Connection: .peer (ip, port), .helo (the
                     EHLO/HELO argument or None), .tls (bool: STARTTLS
                     completed), .tls_version, .tls_cipher, .commands (every
                     command line received, as str), .transactions
  peer.transactions  list of Transaction, one per MAIL FROM, in order:
                     .mail_from (str, without <>), .mail_params (str),
                     .rcpts (addresses answered 2xx), .rcpt_replies (list
                     of (address, code); code None for a raw/DROP reply), .data (bytes, dot-unstuffed, CRLF
                     line ends, or None if DATA never completed),
                     .data_code (reply code given to the message; None if
                     none or a raw/DROP reply),
                     .helo, .tls, .connection
  peer.delivered()   the transactions whose DATA got a 2xx reply
  peer.max_concurrent  the most connections that were open at once

Waiting helpers: ``wait_transactions(n, timeout, delivered=False)`` and
``wait_connections(n, timeout)`` return the list once it has n items, or
raise AssertionError after timeout seconds.

Helpers: ``make_cert(directory, cn="peer.test")`` -> (certfile, keyfile),
a self-signed RSA pair made with the openssl command-line tool.
"""

import os
import socket
import ssl
import subprocess
import threading
import time

__all__ = ["SmtpPeer", "Transaction", "Connection", "make_cert"]


def make_cert(directory, cn="peer.test"):
    """Create a self-signed certificate and key with the openssl CLI in
    directory; return (certfile, keyfile)."""
    cert = os.path.join(directory, "peer-cert.pem")
    key = os.path.join(directory, "peer-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:" + cn],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Transaction:
    """One MAIL FROM ... [DATA] exchange."""

    def __init__(self, connection, mail_from, mail_params):
        self.connection = connection
        self.helo = connection.helo
        self.tls = connection.tls
        self.mail_from = mail_from
        self.mail_params = mail_params
        self.rcpts = []
        self.rcpt_replies = []
        self.data = None
        self.data_code = None

    def __repr__(self):
        return "<Transaction from=%r rcpts=%r tls=%r data_code=%r size=%s>" % (
            self.mail_from, self.rcpts, self.tls, self.data_code,
            None if self.data is None else len(self.data))


class Connection:
    """One accepted TCP connection."""

    def __init__(self, peer):
        self.peer = peer
        self.helo = None
        self.tls = False
        self.tls_version = None
        self.tls_cipher = None
        self.commands = []
        self.transactions = []
        self.closed = False


class _Hang(Exception):
    pass


class _Drop(Exception):
    pass


def _addr(arg):
    """The address inside '<...>' of a MAIL/RCPT argument, and the rest."""
    arg = arg.strip()
    if arg.startswith("<"):
        end = arg.find(">")
        if end < 0:
            return None, ""
        return arg[1:end], arg[end + 1:].strip()
    parts = arg.split(None, 1)
    return (parts[0] if parts else ""), (parts[1] if len(parts) > 1 else "")


class SmtpPeer:
    """See the module docstring."""

    DROP = "drop"  # reply rule value: close the connection without answering

    def __init__(self, host="127.0.0.1", port=0, hostname="peer.test",
                 greeting=(220, None), ehlo_reply=(250, None), helo_reply=(250, None),
                 pipelining=False,
                 mail_reply=(250, "2.1.0 ok"), rcpt_reply=(250, "2.1.5 ok"),
                 data_reply=(250, "2.0.0 queued"), starttls=False,
                 certfile=None, keyfile=None, hang=None, max_line=4096):
        self.host = host
        self.port = port
        self.hostname = hostname
        self.greeting = greeting
        self.ehlo_reply = ehlo_reply
        self.helo_reply = helo_reply
        self.pipelining = pipelining
        self.mail_reply = mail_reply
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.starttls = starttls
        self.certfile = certfile
        self.keyfile = keyfile
        self.hang = hang
        self.max_line = max_line
        self.connections = []
        self.transactions = []
        self._sock = None
        self._thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open = set()
        self._active = 0
        self.max_concurrent = 0

    # --- life cycle -------------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        self._sock = s
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self._sock:
            self._sock.close()
            self._sock = None
        with self._lock:
            socks = list(self._open)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- observation ------------------------------------------------------
    def delivered(self):
        return [t for t in self.transactions
                if t.data_code is not None and 200 <= t.data_code < 300]

    def wait_transactions(self, n, timeout=30, delivered=False):
        deadline = time.time() + timeout
        while True:
            got = self.delivered() if delivered else list(self.transactions)
            if len(got) >= n:
                return got
            if time.time() > deadline:
                raise AssertionError("smtp peer %s:%d: %d of %d %stransactions after %ss: %r" % (
                    self.host, self.port, len(got), n, "delivered " if delivered else "",
                    timeout, self.transactions))
            time.sleep(0.05)

    def wait_connections(self, n, timeout=30):
        deadline = time.time() + timeout
        while len(self.connections) < n:
            if time.time() > deadline:
                raise AssertionError("smtp peer %s:%d: %d of %d connections after %ss" % (
                    self.host, self.port, len(self.connections), n, timeout))
            time.sleep(0.05)
        return list(self.connections)

    # --- server -----------------------------------------------------------
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = Connection(addr)
            self.connections.append(conn)
            with self._lock:
                self._open.add(c)
            threading.Thread(target=self._serve, args=(c, conn), daemon=True).start()

    def _serve(self, sock, conn):
        with self._lock:
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
        try:
            sock.settimeout(None)
            self._session(sock, conn)
        except _Hang:
            self._stop.wait()
        except _Drop:
            pass
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with self._lock:
                self._active -= 1
            conn.closed = True
            for s in (sock, getattr(conn, "_tls_sock", None)):
                if s is None:
                    continue
                with self._lock:
                    self._open.discard(s)
                try:
                    s.close()
                except OSError:
                    pass

    @staticmethod
    def _reply_of(rule, arg):
        if callable(rule):
            return rule(arg)
        if isinstance(rule, dict):
            key = arg.lower() if isinstance(arg, str) else arg
            for k, v in rule.items():
                if k is not None and k.lower() == key:
                    return v
            return rule.get(None, (250, "2.1.5 ok"))
        return rule

    def _reply(self, f, reply):
        """Send reply = (code, text) | bytes | DROP; return its code (None for raw)."""
        if reply == self.DROP:
            raise _Drop()
        if isinstance(reply, (bytes, bytearray)):
            f.write(bytes(reply))
            f.flush()
            return None
        code, text = reply
        self._send(f, code, text)
        return code

    def _send(self, f, code, text):
        lines = (text or "").split("\n")
        out = b""
        for i, line in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            out += ("%d%s%s\r\n" % (code, sep, line)).encode()
        f.write(out)
        f.flush()

    def _readline(self, f):
        line = f.readline(self.max_line + 2)
        if not line:
            raise OSError("peer closed")
        return line

    def _session(self, sock, conn):
        if self.hang == "greeting":
            raise _Hang()
        f = sock.makefile("rwb")
        if isinstance(self.greeting, tuple) and self.greeting[1] is None:
            code = self._reply(f, (self.greeting[0], "%s ESMTP smtp_peer" % self.hostname))
        else:
            code = self._reply(f, self.greeting)
        refuse = code is not None and code >= 400
        tx = None
        while not self._stop.is_set():
            raw = self._readline(f)
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            conn.commands.append(line)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if not raw.endswith(b"\n") or len(raw) > self.max_line:
                self._send(f, 500, "5.5.2 line too long")
                continue
            if verb == "QUIT":
                self._send(f, 221, "2.0.0 bye")
                return
            if refuse:
                self._send(f, 503, "5.5.1 no service")
                continue
            if verb in ("EHLO", "HELO"):
                conn.helo = arg.strip()
                tx = None
                reply = self.ehlo_reply if verb == "EHLO" else self.helo_reply
                if isinstance(reply, tuple) and reply[0] == 250 and reply[1] is None:
                    ext = [self.hostname, "8BITMIME", "SIZE 100000000", "ENHANCEDSTATUSCODES"]
                    if self.pipelining:
                        ext.append("PIPELINING")
                    if self.starttls and not conn.tls and verb == "EHLO":
                        ext.append("STARTTLS")
                    reply = (250, "\n".join(ext if verb == "EHLO" else ext[:1]))
                self._reply(f, reply)
            elif verb == "STARTTLS":
                if not self.starttls or conn.tls:
                    self._send(f, 502, "5.5.1 not offered")
                    continue
                self._send(f, 220, "2.0.0 go ahead")
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.certfile, self.keyfile)
                f.close()
                # RFC 3207 §4.2: anything pipelined before the handshake is dropped
                # by starting from a fresh file object on the TLS socket.
                sock = ctx.wrap_socket(sock, server_side=True)
                conn._tls_sock = sock
                with self._lock:
                    self._open.add(sock)
                conn.tls = True
                conn.tls_version = sock.version()
                conn.tls_cipher = (sock.cipher() or (None,))[0]
                conn.helo = None
                tx = None
                f = sock.makefile("rwb")
            elif verb == "RSET":
                tx = None
                self._send(f, 250, "2.0.0 ok")
            elif verb == "NOOP":
                self._send(f, 250, "2.0.0 ok")
            elif verb == "MAIL":
                if conn.helo is None:
                    self._send(f, 503, "5.5.1 EHLO first")
                    continue
                if not arg.upper().startswith("FROM:"):
                    self._send(f, 501, "5.5.4 syntax")
                    continue
                sender, params = _addr(arg[5:])
                if sender is None:
                    self._send(f, 501, "5.1.7 bad address")
                    continue
                reply = self._reply_of(self.mail_reply, sender)
                if isinstance(reply, tuple) and 200 <= reply[0] < 300:
                    tx = Transaction(conn, sender, params)
                    conn.transactions.append(tx)
                    self.transactions.append(tx)
                self._reply(f, reply)
            elif verb == "RCPT":
                if tx is None:
                    self._send(f, 503, "5.5.1 MAIL first")
                    continue
                if not arg.upper().startswith("TO:"):
                    self._send(f, 501, "5.5.4 syntax")
                    continue
                rcpt, _ = _addr(arg[3:])
                if not rcpt:
                    self._send(f, 501, "5.1.3 bad address")
                    continue
                reply = self._reply_of(self.rcpt_reply, rcpt)
                code = reply[0] if isinstance(reply, tuple) else None
                tx.rcpt_replies.append((rcpt, code))
                if code is not None and 200 <= code < 300:
                    tx.rcpts.append(rcpt)
                self._reply(f, reply)
            elif verb == "DATA":
                if tx is None or not tx.rcpts:
                    self._send(f, 503, "5.5.1 no valid recipients")
                    continue
                self._send(f, 354, "go ahead")
                body = []
                while True:
                    l = f.readline(1 << 20)
                    if not l:
                        raise OSError("peer closed in DATA")
                    if l == b".\r\n":
                        break
                    if l.startswith(b"."):
                        l = l[1:]
                    body.append(l)
                tx.data = b"".join(body)
                if self.hang == "data":
                    raise _Hang()
                reply = self._reply_of(self.data_reply, tx)
                tx.data_code = reply[0] if isinstance(reply, tuple) else None
                self._reply(f, reply)
                tx = None
            else:
                self._send(f, 502, "5.5.2 command not implemented")


if __name__ == "__main__":  # manual use: python3 smtp_peer.py PORT
    import sys
    p = SmtpPeer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print("listening on", p.port)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        p.stop()
