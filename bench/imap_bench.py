#!/usr/bin/env python3
"""IMAP load: tegami's imapd against Dovecot, same data, same run.

Both servers get the same generated messages, written straight into their
Maildirs (no delivery involved), and the same users with SHA-512 crypt
password hashes (Dovecot's reference uses SHA512-CRYPT). Figures, per server:

  logins/s        C clients doing connect, LOGIN, LOGOUT for T seconds
  cpu ms/login    CPU (user+sys) of the server's whole process tree per login
  select big      SELECT of a folder with --big messages: first (cold: the
                  index is built) and second (warm)
  fetch big       FETCH 1:* (FLAGS ENVELOPE) on that folder (warm)
  search body     SEARCH BODY "<word>" on that folder (once, then again)
  commands/s      C clients on long sessions, each on its own 1000-message
                  INBOX, a fixed mix of FETCH, STORE, SEARCH, NOOP, UID FETCH
  append/s        C clients appending 2 KiB messages
  store/s         one client flipping \\Flagged on single messages
  KiB/idle conn   PSS of the server's processes with --idle logged-in,
                  selected, idle connections, minus the PSS before, per
                  connection

Dovecot is the reference from ../shared/reference/dovecot-setup.sh
(127.0.0.1:11143, users u1..u50/pw, mail in /var/tmp/refmail); run as root.

    python3 bench/imap_bench.py [--big 100000] [--clients 10] [--seconds 10] [--idle 100]
"""

import argparse
import os
import random
import selectors
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)
os.environ.setdefault("TEGAMI_BUILD", os.path.join(REPO, "build"))
from harness import Sandbox  # noqa: E402
from smtp_bench import tree_cpu  # noqa: E402

DOVECOT_ROOT = "/var/tmp/refmail"
DOVECOT_PORT = 11143
DOVECOT_PID = "/run/dovecot/master.pid"
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
         "zulu").split()


# ---------------------------------------------------------------- messages
def make_message(i, rnd):
    words = lambda n: " ".join(rnd.choice(WORDS) for _ in range(n))  # noqa: E731
    body = "\n".join(words(12) for _ in range(rnd.randint(10, 40)))
    if i % 1000 == 7:
        body += "\nthe needle is xylophone\n"
    hdr = ("Return-Path: <sender%d@example.test>\n"
           "From: Sender %d <sender%d@example.test>\n"
           "To: User <u@example.test>\n"
           "Subject: %s %d\n"
           "Date: Mon, 2 Nov 2026 10:%02d:%02d +0000\n"
           "Message-ID: <bench.%d@example.test>\n"
           "MIME-Version: 1.0\n" % (i % 97, i % 97, i % 97, words(4), i, (i // 60) % 60, i % 60,
                                    i))
    if i % 5 == 0:
        b = "b%d" % i
        text = (hdr + 'Content-Type: multipart/alternative; boundary="%s"\n\n'
                "--%s\nContent-Type: text/plain; charset=us-ascii\n\n%s\n"
                "--%s\nContent-Type: text/html; charset=us-ascii\n\n<p>%s</p>\n--%s--\n"
                % (b, b, body, b, body[:200], b))
    else:
        text = hdr + "Content-Type: text/plain; charset=us-ascii\n\n" + body + "\n"
    return text.encode()


def fill_maildir(folder, count, seed, owner=None):
    """Write count messages into folder/cur (Maildir, LF line ends)."""
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        if not os.path.basename(folder).startswith("."):
            os.makedirs(os.path.join(folder, ".Drafts", sub), exist_ok=True)
    rnd = random.Random(seed)
    cur = os.path.join(folder, "cur")
    base = 1790000000
    for i in range(count):
        data = make_message(i, rnd)
        flags = "S" if i % 3 else ""
        name = "%d.M%dP1.bench,S=%d,W=%d:2,%s" % (base + i, i, len(data),
                                                   len(data) + data.count(b"\n"), flags)
        path = os.path.join(cur, name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (base + i, base + i))
    if owner is not None:
        subprocess.run(["chown", "-R", owner, folder], check=True)


# ------------------------------------------------------------- IMAP client
class Imap:
    """A minimal IMAP client: one command at a time, literals skipped."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=600)
        self.buf = b""
        self.n = 0
        self.readline()  # greeting

    def readline(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def skip(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data
        self.buf = self.buf[n:]

    def cmd(self, text, literal=None):
        self.n += 1
        tag = b"a%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text.encode() + b" {%d+}\r\n" % len(literal) + literal +
                              b"\r\n")
        lines = 0
        while True:
            line = first = self.readline()
            lines += 1
            while line.endswith(b"}") and b"{" in line:
                self.skip(int(line[line.rindex(b"{") + 1:-1]))
                line = self.readline()  # the rest of the response after the literal
            if first.startswith(tag + b" "):
                if not first.startswith(tag + b" OK"):
                    raise RuntimeError("%s -> %r" % (text[:60], line[:200]))
                return lines

    def close(self):
        try:
            self.cmd("LOGOUT")
        except (OSError, RuntimeError, ConnectionError):
            pass
        self.sock.close()


def run_workers(fn, clients, seconds):
    """Run fn(i, deadline) in `clients` forked processes; return the sum of their counts."""
    deadline = time.time() + seconds
    pipes = []
    for i in range(clients):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            count = 0
            try:
                count = fn(i, deadline)
            except Exception as e:  # noqa: BLE001 - report and count nothing more
                sys.stderr.write("worker %d: %s\n" % (i, e))
            os.write(w, str(count).encode())
            os._exit(0)
        os.close(w)
        pipes.append((pid, r))
    total = 0
    for pid, r in pipes:
        data = b""
        while True:
            chunk = os.read(r, 64)
            if not chunk:
                break
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        total += int(data or b"0")
    return total


def pss_kib(root):
    """Sum of PSS (KiB) of root and its descendants."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
            kids.setdefault(int(data[data.rindex(")") + 2:].split()[1]), []).append(int(name))
        except OSError:
            pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# -------------------------------------------------------------- workloads
def measure(name, port, root_pid, args):
    res = {}
    users = ["u%d" % (i + 1) for i in range(max(args.clients, 10))]

    def logins(i, deadline):
        n = 0
        while time.time() < deadline:
            c = Imap(port)
            c.cmd("LOGIN %s pw" % users[i % len(users)])
            c.close()
            n += 1
        return n

    cpu0 = tree_cpu(root_pid)
    t0 = time.time()
    n = run_workers(logins, args.clients, args.seconds)
    dt = time.time() - t0
    cpu = tree_cpu(root_pid) - cpu0
    res["logins/s"] = n / dt
    res["cpu ms/login"] = 1000 * cpu / max(n, 1)

    c = Imap(port)
    c.cmd("LOGIN alice pw")
    for label in ("select big (cold) s", "select big (warm) s"):
        t0 = time.time()
        c.cmd("SELECT bench")
        res[label] = time.time() - t0
        c.cmd("UNSELECT") if label.endswith("(cold) s") else None
    t0 = time.time()
    c.cmd("FETCH 1:* (FLAGS ENVELOPE)")
    res["fetch big (warm) s"] = time.time() - t0
    for label in ("search body 1st s", "search body 2nd s"):
        t0 = time.time()
        c.cmd('SEARCH BODY "xylophone"')
        res[label] = time.time() - t0
    c.close()

    mix = ["FETCH %d (FLAGS UID)", "UID FETCH 1:50 (FLAGS)", "STORE %d +FLAGS (\\Seen)",
           "SEARCH UNSEEN", "NOOP", "FETCH %d BODY.PEEK[HEADER]", "STORE %d -FLAGS (\\Seen)",
           "FETCH %d (ENVELOPE)"]

    def commands(i, deadline):
        c = Imap(port)
        c.cmd("LOGIN %s pw" % users[i % len(users)])
        c.cmd("SELECT INBOX")
        rnd = random.Random(i)
        n = 0
        while time.time() < deadline:
            for m in mix:
                c.cmd(m % rnd.randint(1, 1000) if "%d" in m else m)
                n += 1
        c.close()
        return n

    cpu0 = tree_cpu(root_pid)
    t0 = time.time()
    n = run_workers(commands, args.clients, args.seconds)
    dt = time.time() - t0
    res["commands/s"] = n / dt
    res["cpu us/command"] = 1e6 * (tree_cpu(root_pid) - cpu0) / max(n, 1)

    msg = make_message(3, random.Random(3))
    msg = msg.replace(b"\n", b"\r\n")[:2048]

    def appends(i, deadline):
        c = Imap(port)
        c.cmd("LOGIN %s pw" % users[i % len(users)])
        n = 0
        while time.time() < deadline:
            c.cmd("APPEND Drafts (\\Draft)", literal=msg)
            n += 1
        c.close()
        return n

    t0 = time.time()
    n = run_workers(appends, args.clients, args.seconds)
    res["append/s"] = n / (time.time() - t0)

    c = Imap(port)
    c.cmd("LOGIN u1 pw")
    c.cmd("SELECT INBOX")
    t0, n = time.time(), 0
    while time.time() - t0 < args.seconds:
        c.cmd("STORE %d %sFLAGS (\\Flagged)" % (n % 1000 + 1, "+-"[n // 1000 % 2]))
        n += 1
    res["store/s"] = n / (time.time() - t0)
    c.close()

    time.sleep(1)
    before = pss_kib(root_pid)
    conns = []
    for i in range(args.idle):
        c = Imap(port)
        c.cmd("LOGIN %s pw" % users[i % len(users)])
        c.cmd("SELECT INBOX")
        conns.append(c)
    time.sleep(2)
    after = pss_kib(root_pid)
    for c in conns:
        c.close()
    res["KiB/idle conn"] = (after - before) / args.idle
    print("%-8s %s" % (name, "  ".join("%s=%.4g" % kv for kv in res.items())), flush=True)
    return res


# ------------------------------------------------------------------ setup
def sha512(password):
    return subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, text=True,
                          check=True).stdout.strip()


def setup_tegami(args):
    sb = Sandbox(domain="bench.test", params={"imapd_user_connection_limit": 1000})
    users = ["alice"] + ["u%d" % (i + 1) for i in range(50)]
    sb.user_add("zz", "zz")  # rebuilds the table; replaced below
    with open(os.path.join(sb.dir, "users"), "w") as f:
        for u in users:
            f.write("%s:%s\n" % (u, sha512("pw")))
    sb.user_add("zz", "zz")  # rebuild virtual_user_maps from the file we wrote
    for u in users:
        md = sb.maildir(u)
        fill_maildir(md, 1000 if u != "alice" else 10, seed=sum(u.encode()))
    fill_maildir(os.path.join(sb.maildir("alice"), ".bench"), args.big, seed=1)
    sb.start()
    return sb


def setup_dovecot(args):
    subprocess.run(["bash", os.path.join(REPO, "..", "shared", "reference", "dovecot-setup.sh")],
                   check=True, env=dict(os.environ, AUTH_WAIT="0"))
    for u in ["alice"] + ["u%d" % (i + 1) for i in range(50)]:
        md = os.path.join(DOVECOT_ROOT, u, "Maildir")
        shutil.rmtree(md, ignore_errors=True)
        fill_maildir(md, 1000 if u != "alice" else 10, seed=sum(u.encode()))
        if u == "alice":
            fill_maildir(os.path.join(md, ".bench"), args.big, seed=1)
        subprocess.run(["chown", "-R", "vmail:vmail", os.path.join(DOVECOT_ROOT, u)], check=True)
    # alice's reference password is alicepw; the bench logs in with pw for everyone.
    users = "/etc/dovecot/refusers"
    with open(users) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        parts = line.split(":")
        if parts[0] == "alice":
            parts[1] = "{SHA512-CRYPT}" + sha512("pw")
        out.append(":".join(parts))
    with open(users, "w") as f:
        f.write("\n".join(out) + "\n")
    with open(DOVECOT_PID) as f:
        return int(f.read().split()[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", type=int, default=100000, help="messages in the big folder")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--idle", type=int, default=100, help="idle connections for memory")
    ap.add_argument("--skip-dovecot", action="store_true")
    ap.add_argument("--skip-tegami", action="store_true")
    args = ap.parse_args()

    results = {}
    sb = setup_tegami(args)
    try:
        master = sb.master_pid()
        if not args.skip_dovecot:
            dpid = setup_dovecot(args)
            results["dovecot"] = measure("dovecot", DOVECOT_PORT, dpid, args)
        if not args.skip_tegami:
            results["tegami"] = measure("tegami", sb.port("imap"), master, args)
    finally:
        sb.close()
        if not args.skip_dovecot:
            subprocess.run(["bash", os.path.join(REPO, "..", "shared", "reference",
                                                 "dovecot-stop.sh")])
    if "dovecot" in results and "tegami" in results:
        print("\nratio tegami/dovecot:")
        for k, v in results["tegami"].items():
            d = results["dovecot"][k]
            print("  %-22s %8.3g / %8.3g = %.2f" % (k, v, d, v / d if d else float("nan")))


if __name__ == "__main__":
    main()
