#!/usr/bin/env python3
"""Outbound relay load: tegami against Postfix, same workload, same run.

Postfix's smtp-source sends N messages at concurrency C (one message per
connection, one recipient user@sink.test) into each system's SMTP server;
each system relays them with its own smtp client to a Postfix smtp-sink on
loopback, which counts what arrives. For each run it prints:
  accept/s      messages accepted per second (smtp-source wall time)
  relay/s       messages per second until the sink has counted all N
  qmgr ms/msg   CPU time (user+sys) of the queue manager per message,
                from /proc/PID/stat of qmgr before and after
  cpu ms/msg    CPU time of the whole system's process tree per message

tegami: a sandbox on 127.0.0.1 that routes sink.test to
[127.0.0.1]:SINKPORT with transport_maps (--route transport, default) or
relayhost (--route relayhost); its sink listens on a free port.
Postfix: the reference set up by ../shared/reference/postfix-setup.sh
(SMTP 127.0.0.1:2525, relays sink.test to 127.0.0.1:2626, where this
script runs the second smtp-sink). Run as root (postfix-setup.sh needs it).

    python3 bench/outbound_bench.py [--messages 2000] [--concurrency 10] [--rounds 2]
"""

import argparse
import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)
os.environ.setdefault("TEGAMI_BUILD", os.path.join(REPO, "build"))
from harness import Sandbox  # noqa: E402
from smtp_bench import CLK, POSTFIX_PID, proc_stat, tree_cpu  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
REFERENCE = os.path.join(REPO, "..", "shared", "reference")
POSTFIX_SINK_PORT = 2626


class Sink:
    """A Postfix smtp-sink on 127.0.0.1:port; .count is the number of
    messages it has received (parsed from its -c counters)."""

    def __init__(self, port):
        self.port = port
        self.count = 0
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-c", "-u", "nobody", "127.0.0.1:%d" % port, "1024"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("smtp-sink on port %d exited: %s" %
                                   (port, self.proc.stderr.read().decode(errors="replace")))
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink does not listen on port %d" % port)

    def _read(self):
        rx = re.compile(rb"mesg=(\d+)")
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            buf = (buf + chunk)[-256:]
            m = rx.findall(buf)
            if m:
                self.count = int(m[-1])

    def wait(self, n, timeout):
        deadline = time.time() + timeout
        while self.count < n and time.time() < deadline:
            time.sleep(0.01)
        return self.count

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_of(pid):
    """User+system CPU seconds of one live process (0 if it is gone)."""
    st = proc_stat(pid) if pid else None
    return (st[1] + st[2]) / CLK if st else 0.0


def postfix_master():
    with open(POSTFIX_PID) as f:
        return int(f.read().split()[0])


def postfix_qmgr(master):
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % name) as f:
                comm = f.read().strip()
        except OSError:
            continue
        st = proc_stat(int(name))
        if comm == "qmgr" and st and st[0] == master:
            return int(name)
    return None


def run_load(name, host, port, sink, master_pid, qmgr_pid, n, c, size):
    base = sink.count
    cpu0 = tree_cpu(master_pid)
    q0 = cpu_of(qmgr_pid)
    t0 = time.time()
    p = subprocess.run([SMTP_SOURCE, "-s", str(c), "-m", str(n), "-l", str(size),
                        "-f", "load@bench.test", "-t", "relay@sink.test",
                        "%s:%d" % (host, port)], capture_output=True, text=True)
    t_accept = time.time() - t0
    if p.returncode != 0:
        print("%s: smtp-source failed: %s" % (name, p.stderr.strip()), file=sys.stderr)
    got = sink.wait(base + n, 600) - base
    t_relay = time.time() - t0
    time.sleep(0.5)  # let the last processes account their CPU
    cpu = tree_cpu(master_pid) - cpu0
    qcpu = cpu_of(qmgr_pid) - q0
    return {"system": name, "c": c, "size": size, "n": n, "relayed": got,
            "accept": n / t_accept, "relay": got / t_relay,
            "qmgr_ms": 1000 * qcpu / max(got, 1), "cpu_ms": 1000 * cpu / max(got, 1)}


def body_of(size):
    """A message of about size bytes, LF line ends (sendmail input)."""
    head = "From: <load@bench.test>\nTo: <relay@sink.test>\nSubject: drain\n\n"
    line = "x" * 75 + "\n"
    return (head + line * max(1, (size - len(head)) // len(line))).encode()


def inject(sendmail_argv, n, size):
    """Submit n messages with a sendmail(1) command while its system is stopped."""
    msg = body_of(size)

    def one(_):
        subprocess.run(sendmail_argv + ["-f", "load@bench.test", "relay@sink.test"], input=msg,
                       check=True, capture_output=True)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def run_drain(name, start, master_of, qmgr_of, sink, n, size):
    """Time from start() until the sink has counted n more messages: the
    queue drain rate with no SMTP client feeding the system meanwhile."""
    base = sink.count
    t0 = time.time()
    start()
    got = sink.wait(base + n, 600) - base
    t = time.time() - t0
    time.sleep(0.5)
    master = master_of()
    cpu = tree_cpu(master)
    qcpu = cpu_of(qmgr_of(master))
    return {"system": name, "c": 0, "size": size, "n": n, "relayed": got, "accept": 0.0,
            "relay": got / t, "qmgr_ms": 1000 * qcpu / max(got, 1),
            "cpu_ms": 1000 * cpu / max(got, 1)}


def port_in_use(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--concurrency", default="10")
    ap.add_argument("--sizes", default="1024")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the systems this many times")
    ap.add_argument("--route", choices=("transport", "relayhost"), default="transport",
                    help="how tegami routes sink.test to the sink")
    ap.add_argument("--no-postfix", action="store_true")
    ap.add_argument("--drain", action="store_true",
                    help="instead of smtp-source: submit N messages with each system's "
                         "sendmail while it is stopped, then time start -> sink has N "
                         "(outbound path only; cpu includes start-up)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="set a tegami main.cf parameter in the sandbox (repeatable)")
    ap.add_argument("--dir", default="/var/tmp", help="where the tegami sandbox is made")
    args = ap.parse_args()

    sinks = []
    postfix_was_running = subprocess.run(["postfix", "status"], capture_output=True).returncode == 0
    if not args.no_postfix:
        if port_in_use(POSTFIX_SINK_PORT):
            sys.exit("port %d is busy: the Postfix reference relays sink.test there and this "
                     "script must run the sink itself" % POSTFIX_SINK_PORT)
        subprocess.run(["bash", os.path.join(REFERENCE, "postfix-setup.sh")],
                       check=True, capture_output=True)
    base = os.path.join(args.dir, "tegami-bench")
    os.makedirs(base, exist_ok=True)
    tempfile.tempdir = base
    sink_port = free_port()
    params = {}
    sb = Sandbox(domain="bench.test")
    try:
        if args.route == "transport":
            table = os.path.join(sb.dir, "transport")
            with open(table, "w") as f:
                f.write("sink.test smtp:[127.0.0.1]:%d\n" % sink_port)
            sb.mailctl("map", "build", table, check=True)
            params["transport_maps"] = "hash:" + table
        else:
            params["relayhost"] = "[127.0.0.1]:%d" % sink_port
        params.update(p.split("=", 1) for p in args.param)
        for k, v in params.items():
            sb.set_param(k, v)
        tsink = Sink(sink_port)
        sinks.append(tsink)
        psink = None
        if not args.no_postfix:
            psink = Sink(POSTFIX_SINK_PORT)
            sinks.append(psink)
        sb.start()
        tq = sb.service_pids("qmgr")
        if len(tq) != 1:
            sys.exit("cannot find tegami's qmgr in `mailctl status`: %r" % sb.status())
        results = []
        concs = [int(x) for x in args.concurrency.split(",")]
        sizes = [int(x) for x in args.sizes.split(",")]
        if args.drain:
            concs = [0]
        for size in sizes if args.drain else []:
            for _ in range(args.rounds):
                sb.stop()
                inject([Sandbox.bin("sendmail"), "-C", sb.dir], args.messages, size)
                results.append(run_drain(
                    "tegami", sb.start, sb.master_pid,
                    lambda _m: sb.service_pids("qmgr")[0], tsink, args.messages, size))
                if psink:
                    subprocess.run(["bash", os.path.join(REFERENCE, "postfix-stop.sh")],
                                   check=True, capture_output=True)
                    inject(["/usr/sbin/sendmail"], args.messages, size)
                    results.append(run_drain(
                        "postfix", lambda: subprocess.run(["postfix", "start"], check=True,
                                                          capture_output=True),
                        postfix_master, postfix_qmgr, psink, args.messages, size))
        for c in concs if not args.drain else []:
            for size in sizes:
                for _ in range(args.rounds):
                    results.append(run_load("tegami", sb.host, sb.port("smtp"), tsink,
                                            sb.master_pid(), sb.service_pids("qmgr")[0],
                                            args.messages, c, size))
                    if psink:
                        pm = postfix_master()
                        results.append(run_load("postfix", "127.0.0.1", 2525, psink, pm,
                                                postfix_qmgr(pm), args.messages, c, size))
        print("%-8s %4s %7s %6s %10s %8s %12s %11s" %
              ("system", "C", "size", "N", "accept/s", "relay/s", "qmgr ms/msg", "cpu ms/msg"))
        for r in results:
            print("%-8s %4d %7d %6d %10.0f %8.0f %12.3f %11.2f%s" %
                  (r["system"], r["c"], r["size"], r["n"], r["accept"], r["relay"],
                   r["qmgr_ms"], r["cpu_ms"],
                   "" if r["relayed"] == r["n"] else "  (relayed %d)" % r["relayed"]))
        if psink:
            print()
            print("ratios tegami/postfix (relay rate; qmgr cpu per message; all cpu per message):")
            for c in concs:
                for size in sizes:
                    t = [r for r in results if r["system"] == "tegami" and r["c"] == c
                         and r["size"] == size]
                    p = [r for r in results if r["system"] == "postfix" and r["c"] == c
                         and r["size"] == size]

                    def avg(rs, k):
                        return sum(r[k] for r in rs) / len(rs)
                    print("  C=%-3d size=%-7d rate x%.2f   qmgr cpu x%.2f   cpu x%.2f" %
                          (c, size, avg(t, "relay") / max(avg(p, "relay"), 1e-9),
                           avg(t, "qmgr_ms") / max(avg(p, "qmgr_ms"), 1e-9),
                           avg(t, "cpu_ms") / max(avg(p, "cpu_ms"), 1e-9)))
    finally:
        sb.close()
        for s in sinks:
            s.stop()
        if not args.no_postfix and not postfix_was_running:
            subprocess.run(["bash", os.path.join(REFERENCE, "postfix-stop.sh")],
                           capture_output=True)


if __name__ == "__main__":
    main()
