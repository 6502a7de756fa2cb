#!/usr/bin/env python3
"""SMTP → Maildir load: tegami against Postfix, same workload, same run.

For each (concurrency, message size) it sends N messages with Postfix's
smtp-source (one message per connection, like an MX sees) to each system in
turn and prints:
  accept/s    messages accepted per second (smtp-source wall time)
  e2e/s       messages per second until the last file is in the Maildir
  cpu ms/msg  CPU time (user+sys) of the whole system's process tree per message
Postfix is the reference set up by ../shared/reference/postfix-setup.sh
(127.0.0.1:2525, mailbox smtpload@ref.test); run as root.

    python3 bench/smtp_bench.py [--messages 2000] [--concurrency 10,50] [--sizes 1024,102400]
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
os.environ.setdefault("TEGAMI_BUILD", os.path.join(REPO, "build"))
from harness import Sandbox  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
POSTFIX_MAILDIR = "/var/tmp/refmail/smtpload/Maildir"
POSTFIX_PID = "/var/spool/postfix/pid/master.pid"


def proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    # fields after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return int(rest[1]), int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14])


def tree_cpu(root):
    """CPU seconds used by root and all its descendants (live and reaped)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                stats[int(name)] = st
    children = {}
    for pid, st in stats.items():
        children.setdefault(st[0], []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        st = stats.get(pid)
        if st is None:
            continue
        total += st[1] + st[2] + st[3] + st[4]
        todo += children.get(pid, [])
    return total / CLK


def count_files(maildir):
    n = 0
    for sub in ("new", "cur"):
        try:
            n += len(os.listdir(os.path.join(maildir, sub)))
        except FileNotFoundError:
            pass
    return n


TRASH = []  # directories holding the previous runs' mail, removed at the end


def clear_maildir(maildir):
    """Empty the Maildir by moving its files aside (renames), not by unlinking.

    ext4 does not reuse an inode freed less than a minute ago (without a journal
    it checks every such inode in the group at each file creation), so deleting
    the last run's thousands of files right before the next run would slow every
    delivery of that run, for both systems. The files are removed at the end.
    """
    trash = os.path.join(os.path.dirname(maildir), "bench-trash")
    os.makedirs(trash, exist_ok=True)
    if trash not in TRASH:
        TRASH.append(trash)
    for sub in ("new", "cur", "tmp"):
        d = os.path.join(maildir, sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                os.rename(os.path.join(d, name), os.path.join(trash, "%s-%s" % (sub, name)))


def empty_trash():
    for trash in TRASH:
        shutil.rmtree(trash, ignore_errors=True)


def run_load(name, host, port, rcpt, maildir, master_pid, n, c, size):
    clear_maildir(maildir)
    cpu0 = tree_cpu(master_pid)
    t0 = time.time()
    p = subprocess.run(["/usr/sbin/smtp-source", "-s", str(c), "-m", str(n), "-l", str(size),
                        "-f", "load@bench.test", "-t", rcpt, "%s:%d" % (host, port)],
                       capture_output=True, text=True)
    t_accept = time.time() - t0
    if p.returncode != 0:
        print("%s: smtp-source failed: %s" % (name, p.stderr.strip()), file=sys.stderr)
    deadline = time.time() + 600
    while count_files(maildir) < n and time.time() < deadline:
        time.sleep(0.02)
    t_e2e = time.time() - t0
    time.sleep(0.5)  # let the last processes account their CPU
    cpu = tree_cpu(master_pid) - cpu0
    got = count_files(maildir)
    return {"system": name, "c": c, "size": size, "n": n, "delivered": got,
            "accept": n / t_accept, "e2e": got / t_e2e, "cpu_ms": 1000 * cpu / max(got, 1)}


def postfix_master():
    with open(POSTFIX_PID) as f:
        return int(f.read().split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--concurrency", default="10,50")
    ap.add_argument("--sizes", default="1024,102400")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the systems this many times")
    ap.add_argument("--no-postfix", action="store_true")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="set a tegami main.cf parameter in the sandbox (repeatable)")
    ap.add_argument("--dir", default="/var/tmp", help="where the tegami sandbox is made")
    ap.add_argument("--warmup", type=int, default=500,
                    help="messages sent to each system before the measured runs (not counted)")
    args = ap.parse_args()

    if not args.no_postfix:
        subprocess.run(["bash", os.path.join(REPO, "..", "shared", "reference", "postfix-setup.sh")],
                       check=True, capture_output=True)
    # The sandbox lives away from /tmp, where the e2e tests of everyone on this
    # machine create and delete thousands of files (see clear_maildir).
    base = os.path.join(args.dir, "tegami-bench")
    os.makedirs(base, exist_ok=True)
    tempfile.tempdir = base
    params = dict(p.split("=", 1) for p in args.param)
    sb = Sandbox(domain="example.test", params=params)
    try:
        sb.user_add("bench", "bench")
        sb.start()
        # An unmeasured first run for each system: processes started, queue
        # files and caches in use, as on a mail server that has been running.
        if args.warmup > 0:
            run_load("tegami", sb.host, sb.port("smtp"), "bench@example.test",
                     sb.maildir("bench"), sb.master_pid(), args.warmup, 10, 1024)
            if not args.no_postfix:
                run_load("postfix", "127.0.0.1", 2525, "smtpload@ref.test",
                         POSTFIX_MAILDIR, postfix_master(), args.warmup, 10, 1024)
        results = []
        for c in [int(x) for x in args.concurrency.split(",")]:
            for size in [int(x) for x in args.sizes.split(",")]:
                for _ in range(args.rounds):
                    results.append(run_load("tegami", sb.host, sb.port("smtp"), "bench@example.test",
                                            sb.maildir("bench"), sb.master_pid(),
                                            args.messages, c, size))
                    if not args.no_postfix:
                        results.append(run_load("postfix", "127.0.0.1", 2525, "smtpload@ref.test",
                                                POSTFIX_MAILDIR, postfix_master(),
                                                args.messages, c, size))
        print("%-8s %4s %7s %6s %10s %8s %11s" %
              ("system", "C", "size", "N", "accept/s", "e2e/s", "cpu ms/msg"))
        for r in results:
            print("%-8s %4d %7d %6d %10.0f %8.0f %11.2f%s" %
                  (r["system"], r["c"], r["size"], r["n"], r["accept"], r["e2e"], r["cpu_ms"],
                   "" if r["delivered"] == r["n"] else "  (delivered %d)" % r["delivered"]))
        if not args.no_postfix:
            print()
            print("ratios tegami/postfix (e2e rate, cpu per message):")
            for c in [int(x) for x in args.concurrency.split(",")]:
                for size in [int(x) for x in args.sizes.split(",")]:
                    t = [r for r in results if r["system"] == "tegami" and r["c"] == c and r["size"] == size]
                    p = [r for r in results if r["system"] == "postfix" and r["c"] == c and r["size"] == size]
                    te = sum(r["e2e"] for r in t) / len(t)
                    pe = sum(r["e2e"] for r in p) / len(p)
                    tc = sum(r["cpu_ms"] for r in t) / len(t)
                    pc = sum(r["cpu_ms"] for r in p) / len(p)
                    print("  C=%-3d size=%-7d rate x%.2f   cpu x%.2f" % (c, size, te / pe, tc / pc))
        print_dirsync(os.path.join(sb.dir, "queue", "pid", "dirsync"))
    finally:
        sb.close()
        empty_trash()


def print_dirsync(path):
    """Counters of the shared directory-fsync map (libmail/dirsync.c), if in use."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        print("dirsync: no map (dirsync_group_commit = no, or not created)")
        return
    if len(head) < 24:
        return
    calls, fsyncs = struct.unpack("<QQ", head[8:24])
    print("dirsync: %d directory fsync requests after renames (smtpd incoming/ + local new/), "
          "%d real fsyncs, %d saved (%.0f %%)" %
          (calls, fsyncs, calls - fsyncs, 100.0 * (calls - fsyncs) / calls if calls else 0))


if __name__ == "__main__":
    main()
