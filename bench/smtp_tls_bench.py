#!/usr/bin/env python3
"""SMTP over STARTTLS → Maildir load: tegami against Postfix, same certificate, same run.

Per message (default): connect → EHLO → STARTTLS → TLS handshake → EHLO →
MAIL/RCPT/DATA (1 KiB body) → QUIT, one message per connection (what an MX
sees), C client processes in parallel. Cold handshakes by default (no session
resumption, the worst case); --resume makes each client process offer its
last session. --per-conn M sends M messages per connection instead.

Both systems present the reference certificate (/var/tmp/reference-tls/
ref.test.{crt,key}, RSA 2048): the tegami sandbox is pointed at it with
smtpd_tls_cert_file/smtpd_tls_key_file.

For each round and system it prints accept/s, e2e/s and CPU ms per delivered
message of the system's whole process tree (same method as smtp_bench.py),
plus the client's own CPU per message and the machine's busy fraction.
Then the memory per idle TLS connection: K connections that completed
STARTTLS and the second EHLO sit idle; the sum of PSS (/proc/PID/smaps_rollup)
over the system's process tree, minus the same sum without connections,
divided by K.

The load client is bench/tls_load.c (compiled here with cc; C worker
processes); --client python uses Python ssl worker processes instead (about
1.7x the client CPU per message). Results and discussion: bench/README.md.

    TEGAMI_BUILD=$PWD/build-perf python3 bench/smtp_tls_bench.py \
        [--messages 2000] [--concurrency 10] [--rounds 3] [--idle 50] [--resume] [--per-conn 1]
"""

import argparse
import multiprocessing
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_bench as sb_  # noqa: E402  (proc_stat, tree_cpu, Maildir helpers, Sandbox)

CERT = "/var/tmp/reference-tls/ref.test.crt"
KEY = "/var/tmp/reference-tls/ref.test.key"
BODY_SIZE = 1024


# ---- process tree ------------------------------------------------------------

def tree_pids(root):
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = sb_.proc_stat(int(name))
            if st:
                parent[int(name)] = st[0]
    children = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in parent:
            out.append(pid)
            todo += children.get(pid, [])
    return out


def proc_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def tree_pss(root):
    """(sum of PSS in KiB over root's process tree, {command: count})."""
    total, names = 0, {}
    for pid in tree_pids(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
        n = proc_name(pid)
        names[n] = names.get(n, 0) + 1
    return total, names


def cpu_busy():
    """(busy jiffies, total jiffies) of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


# ---- the SMTP/TLS client -----------------------------------------------------

class Session:
    """A minimal lock-step SMTP client over a plain socket, then TLS."""

    def __init__(self, host, port, timeout=60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        """Read one (possibly multi-line) reply; return its code."""
        while True:
            end = self.buf.find(b"\r\n")
            while end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if line[3:4] != b"-":
                    return int(line[:3])
                end = self.buf.find(b"\r\n")
            data = self.sock.recv(16384)
            if not data:
                raise ConnectionError("connection closed")
            self.buf += data

    def cmd(self, line, want):
        self.sock.sendall(line)
        code = self.reply()
        if code != want:
            raise RuntimeError("%r -> %d" % (line, code))

    def starttls(self, ctx, session=None):
        self.cmd(b"EHLO client.bench.test\r\n", 250)
        self.cmd(b"STARTTLS\r\n", 220)
        if self.buf:
            raise RuntimeError("data after 220 to STARTTLS")
        self.sock = ctx.wrap_socket(self.sock, server_hostname=None, session=session)
        self.cmd(b"EHLO client.bench.test\r\n", 250)

    def message(self, rcpt, body):
        self.cmd(b"MAIL FROM:<load@bench.test>\r\n", 250)
        self.cmd(b"RCPT TO:<" + rcpt.encode() + b">\r\n", 250)
        self.cmd(b"DATA\r\n", 354)
        self.cmd(body, 250)

    def quit(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply()
        except (OSError, ConnectionError):
            pass
        self.sock.close()


def make_body(size):
    head = b"From: <load@bench.test>\r\nTo: <bench>\r\nSubject: tls bench\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    body = head
    while len(body) < size:
        body += line
    return body[:size - 2].rstrip(b"\r") + b"\r\n.\r\n"


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the cost of verifying is the client's, not the server's
    return ctx


def worker(host, port, rcpt, n_conn, per_conn, resume, go, results):
    ctx = client_ctx()
    body = make_body(BODY_SIZE)
    ok = fail = resumed = 0
    cipher = None
    session = None
    go.wait()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(n_conn):
        s = None
        try:
            s = Session(host, port)
            if s.reply() != 220:
                raise RuntimeError("no greeting")
            s.starttls(ctx, session if resume else None)
            if cipher is None:
                cipher = (s.sock.version(), s.sock.cipher()[0])
            if s.sock.session_reused:
                resumed += 1
            for _ in range(per_conn):
                s.message(rcpt, body)
                ok += 1
            if resume:
                session = s.sock.session
            s.quit()
        except (OSError, RuntimeError, ConnectionError, ssl.SSLError, ValueError) as e:
            fail += 1
            if fail <= 3:
                print("client: %s" % e, file=sys.stderr)
            if s is not None:
                try:
                    s.sock.close()
                except OSError:
                    pass
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    results.put((ok, fail, resumed, cpu, cipher))


def build_client(workdir):
    """Compile bench/tls_load.c (the C load client) into workdir."""
    exe = os.path.join(workdir, "tls_load")
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                    os.path.join(HERE, "tls_load.c"), "-lssl", "-lcrypto"], check=True)
    return exe


def run_load(name, host, port, rcpt, maildir, master_pid, n, c, per_conn, resume, client):
    if client != "python":
        return run_load_c(name, host, port, rcpt, maildir, master_pid, n, c, per_conn, resume,
                          client)
    sb_.clear_maildir(maildir)
    conns = n // per_conn
    share = [conns // c + (1 if i < conns % c else 0) for i in range(c)]
    go = multiprocessing.Event()
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker,
                                     args=(host, port, rcpt, share[i], per_conn, resume, go,
                                           results))
             for i in range(c)]
    for p in procs:
        p.start()
    time.sleep(0.2)
    n_sent = conns * per_conn
    cpu0 = sb_.tree_cpu(master_pid)
    busy0 = cpu_busy()
    t0 = time.time()
    go.set()
    got = [results.get() for _ in procs]
    t_accept = time.time() - t0
    busy1 = cpu_busy()
    for p in procs:
        p.join()
    busy = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
    ciphers = sorted({"%s %s" % g[4] for g in got if g[4]})
    return finish(name, maildir, master_pid, t0, cpu0, conns * per_conn, sum(g[0] for g in got),
                  sum(g[1] for g in got), sum(g[2] for g in got), conns, t_accept,
                  sum(g[3] for g in got), busy, ciphers)


def finish(name, maildir, master_pid, t0, cpu0, n_sent, ok, failed, resumed, conns, t_accept,
           client_cpu, busy, ciphers):
    """Wait for delivery of the accepted messages; the row of one run."""
    deadline = time.time() + 600
    while sb_.count_files(maildir) < ok and time.time() < deadline:
        time.sleep(0.02)
    t_e2e = time.time() - t0
    time.sleep(0.5)  # let the last processes account their CPU
    cpu = sb_.tree_cpu(master_pid) - cpu0
    delivered = sb_.count_files(maildir)
    return {"system": name, "n": n_sent, "ok": ok, "fail": failed, "resumed": resumed,
            "conns": conns, "delivered": delivered, "accept": ok / t_accept,
            "e2e": delivered / t_e2e, "cpu_ms": 1000 * cpu / max(delivered, 1),
            "client_ms": 1000 * client_cpu / max(ok, 1), "busy": busy, "ciphers": ciphers}


def run_load_c(name, host, port, rcpt, maildir, master_pid, n, c, per_conn, resume, exe):
    """The same load with the C client (tls_load.c): C worker processes."""
    sb_.clear_maildir(maildir)
    conns = n // per_conn
    argv = [exe, "-h", host, "-p", str(port), "-t", rcpt, "-n", str(conns), "-c", str(c),
            "-m", str(per_conn), "-s", str(BODY_SIZE)] + (["-r"] if resume else [])
    cpu0 = sb_.tree_cpu(master_pid)
    busy0 = cpu_busy()
    t0 = time.time()
    p = subprocess.run(argv, capture_output=True, text=True)
    busy1 = cpu_busy()
    if p.returncode != 0 or not p.stdout.strip():
        raise RuntimeError("tls_load failed (%d): %s" % (p.returncode, p.stderr))
    if p.stderr:
        print(p.stderr.strip(), file=sys.stderr)
    w = p.stdout.split()
    ok, failed, resumed, wall, client_cpu = int(w[0]), int(w[1]), int(w[2]), float(w[3]), float(w[4])
    # t0 moves to the workers' start (tls_load waits 0.2 s for its workers to fork).
    t0 += 0.2
    busy = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
    return finish(name, maildir, master_pid, t0, cpu0, conns * per_conn, ok, failed, resumed,
                  conns, wall, client_cpu, busy, ["%s %s" % (w[5], w[6])] if len(w) > 6 else [])


def open_idle(host, port, ctx, k):
    out = []
    for _ in range(k):
        s = Session(host, port)
        if s.reply() != 220:
            raise RuntimeError("no greeting")
        s.starttls(ctx)
        out.append(s)
    return out


def idle_memory(name, host, port, master_pid, k):
    """PSS per idle TLS connection of the whole process tree.

    per_conn: (PSS with k idle connections - PSS with none) / k, the plain
    figure; but a system that keeps idle server processes around (both do)
    serves the first connections with processes already counted in the
    baseline, so marginal: (PSS with 2k - PSS with k) / k is also given.
    """
    time.sleep(1)
    base, base_names = tree_pss(master_pid)
    ctx = client_ctx()
    first = second = []
    try:
        first = open_idle(host, port, ctx, k)
        time.sleep(2)  # let every server process settle (lazy allocations, logging)
        loaded, loaded_names = tree_pss(master_pid)
        second = open_idle(host, port, ctx, k)
        time.sleep(2)
        loaded2, loaded2_names = tree_pss(master_pid)
    finally:
        for s in first + second:
            s.quit()
    return {"system": name, "k": k, "base_kib": base, "loaded_kib": loaded,
            "loaded2_kib": loaded2, "per_conn_kib": (loaded - base) / k,
            "marginal_kib": (loaded2 - loaded) / k, "base_procs": base_names,
            "loaded_procs": loaded_names, "loaded2_procs": loaded2_names}


def latency(host, port, rcpt, n=30):
    """Mean wall time (ms) of each step of one session, C=1, cold handshakes."""
    ctx = client_ctx()
    body = make_body(BODY_SIZE)
    steps = ("connect+220", "EHLO+STARTTLS", "handshake", "EHLO over TLS", "MAIL..DATA", "QUIT")
    tot = dict.fromkeys(steps, 0.0)
    for _ in range(n):
        t = [time.perf_counter()]
        s = Session(host, port)
        s.reply()
        t.append(time.perf_counter())
        s.cmd(b"EHLO client.bench.test\r\n", 250)
        s.cmd(b"STARTTLS\r\n", 220)
        t.append(time.perf_counter())
        s.sock = ctx.wrap_socket(s.sock)
        t.append(time.perf_counter())
        s.cmd(b"EHLO client.bench.test\r\n", 250)
        t.append(time.perf_counter())
        s.message(rcpt, body)
        t.append(time.perf_counter())
        s.quit()
        t.append(time.perf_counter())
        for i, step in enumerate(steps):
            tot[step] += t[i + 1] - t[i]
    return {step: 1000 * v / n for step, v in tot.items()}


def negotiated(host, port):
    """What `openssl s_client -starttls smtp` (default groups) gets from the server."""
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "%s:%d" % (host, port), "-brief"], input="QUIT\n",
                       capture_output=True, text=True, timeout=30)
    keep = ("Protocol version", "Ciphersuite", "Peer certificate", "Signature type",
            "Server Temp Key")
    return "; ".join(line.strip() for line in p.stderr.splitlines()
                     if line.strip().startswith(keep))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--concurrency", default="10", help="comma-separated list")
    ap.add_argument("--rounds", type=int, default=2, help="alternate the systems this many times")
    ap.add_argument("--per-conn", type=int, default=1, help="messages per connection")
    ap.add_argument("--resume", action="store_true",
                    help="each client process offers its last TLS session (default: cold)")
    ap.add_argument("--client", choices=("c", "python"), default="c",
                    help="load client: bench/tls_load.c (default) or Python ssl processes")
    ap.add_argument("--idle", type=int, default=50,
                    help="idle TLS connections for the memory measurement (0 = skip)")
    ap.add_argument("--no-postfix", action="store_true")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="set a tegami main.cf parameter in the sandbox (repeatable)")
    ap.add_argument("--dir", default="/var/tmp", help="where the tegami sandbox is made")
    args = ap.parse_args()

    if not args.no_postfix:
        subprocess.run(["bash", os.path.join(sb_.REPO, "..", "shared", "reference",
                                             "postfix-setup.sh")],
                       check=True, capture_output=True)
    base = os.path.join(args.dir, "tegami-bench")
    os.makedirs(base, exist_ok=True)
    tempfile.tempdir = base
    workdir = tempfile.mkdtemp(prefix="tls-client-")
    client = "python" if args.client == "python" else build_client(workdir)
    params = {"smtpd_tls_cert_file": CERT, "smtpd_tls_key_file": KEY,
              # Postfix's reference setup has no per-client connection limit either.
              "smtpd_client_connection_count_limit": "0"}
    params.update(dict(p.split("=", 1) for p in args.param))
    sb = sb_.Sandbox(domain="example.test", params=params)
    tegami = ("tegami", sb.host, sb.port("smtp"), "bench@example.test", sb.maildir("bench"))
    postfix = ("postfix", "127.0.0.1", 2525, "smtpload@ref.test", sb_.POSTFIX_MAILDIR)
    systems = [tegami] if args.no_postfix else [tegami, postfix]
    concurrency = [int(x) for x in args.concurrency.split(",")]

    def master(sysname):
        return sb.master_pid() if sysname == "tegami" else sb_.postfix_master()

    try:
        sb.user_add("bench", "bench")
        sb.start()
        time.sleep(1)
        mem = []
        if args.idle:
            # First, while neither system has idle smtpd processes left over from a load run.
            for s in systems:
                mem.append(idle_memory(s[0], s[1], s[2], master(s[0]), args.idle))
        for s in systems:
            print("%-8s negotiated: %s" % (s[0], negotiated(s[1], s[2])))
        for s in systems:
            lat = latency(s[1], s[2], s[3])
            print("%-8s ms per step (C=1): %s" %
                  (s[0], "  ".join("%s %.2f" % kv for kv in lat.items())))
        results = []
        for c in concurrency:
            for _ in range(args.rounds):
                for s in systems:
                    r = run_load(s[0], s[1], s[2], s[3], s[4], master(s[0]), args.messages, c,
                                 args.per_conn, args.resume, client)
                    r["c"] = c
                    results.append(r)
        print()
        print("%d messages of %d bytes, %d per connection, %s handshakes, %s client" %
              (args.messages, BODY_SIZE, args.per_conn,
               "resumed" if args.resume else "cold", args.client))
        print("%-8s %4s %9s %7s %11s %14s %6s %10s  %s" %
              ("system", "C", "accept/s", "e2e/s", "cpu ms/msg", "client ms/msg", "busy",
               "resumed", "cipher"))
        for r in results:
            extra = ""
            if r["fail"] or r["delivered"] != r["n"]:
                extra = "  (failed %d, delivered %d of %d)" % (r["fail"], r["delivered"], r["n"])
            print("%-8s %4d %9.0f %7.0f %11.2f %14.2f %5.0f%% %5d/%-5d %s%s" %
                  (r["system"], r["c"], r["accept"], r["e2e"], r["cpu_ms"], r["client_ms"],
                   100 * r["busy"], r["resumed"], r["conns"], ",".join(r["ciphers"]), extra))
        if mem:
            print()
            print("memory per idle TLS connection (K=%d, PSS of the whole process tree, KiB):" %
                  args.idle)
            for m in mem:
                print("  %-8s none %d -> K %d -> 2K %d: (K-none)/K %.0f, (2K-K)/K %.0f" %
                      (m["system"], m["base_kib"], m["loaded_kib"], m["loaded2_kib"],
                       m["per_conn_kib"], m["marginal_kib"]))
                for label, key in (("none", "base_procs"), ("K", "loaded_procs"),
                                   ("2K", "loaded2_procs")):
                    print("           processes %-4s %s" % (label, " ".join(
                        "%s:%d" % kv for kv in sorted(m[key].items()))))
        if not args.no_postfix:
            def avg(sysname, c, key):
                v = [r[key] for r in results if r["system"] == sysname and r["c"] == c]
                return sum(v) / len(v)
            print()
            print("ratios tegami/postfix:")
            for c in concurrency:
                print("  C=%-3d accept x%.2f   e2e x%.2f   cpu per message x%.2f" %
                      (c, avg("tegami", c, "accept") / avg("postfix", c, "accept"),
                       avg("tegami", c, "e2e") / avg("postfix", c, "e2e"),
                       avg("tegami", c, "cpu_ms") / avg("postfix", c, "cpu_ms")))
            if len(mem) == 2:
                print("  idle TLS memory per connection x%.2f ((K-none)/K), x%.2f ((2K-K)/K)" %
                      (mem[0]["per_conn_kib"] / mem[1]["per_conn_kib"],
                       mem[0]["marginal_kib"] / mem[1]["marginal_kib"]))
    finally:
        sb.close()
        sb_.empty_trash()
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
