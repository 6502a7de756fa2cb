#!/usr/bin/env python3
"""Cost of qmgr's periodic deferred/ scan with a large deferred queue.

Creates a sandbox, fills deferred/ with N (default 100,000) small but valid
queue files whose retry time (mtime) is a day ahead, starts tegami, and
reports qmgr's own timing of its deferred/ scans (the log line "scan
deferred: 0 files to process (N seen, D left for later: todo list full, S s)"),
plus, with --strace, the system calls qmgr makes during one periodic scan
(strace -c -f), and with --flush, the time to retry them all.
The claim it checks: a scan is readdir + fstatat only (no open/read of
queue files), so its cost is a directory walk.

    TEGAMI_BUILD=$PWD/build-qmgr python3 bench/deferred_scan.py --files 100000 --strace
"""

import argparse
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import harness  # noqa: E402

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


def record(kind, data):
    return kind + len(data).to_bytes(4, "big") + data


def queue_file(sender, rcpt, body):
    out = b"TEGAMIQ1\n" + record(b"W", b"P") + record(b"T", str(int(time.time())).encode())
    out += record(b"S", sender) + record(b"R", b"P\x00" + rcpt + b"\x00")
    out += b"M" + len(body).to_bytes(8, "big") + body
    return out + record(b"X", b"")


def flush(box, n):
    """mailctl flush, then follow the maillog until n deferrals were logged."""
    log = os.path.join(box.dir, "log", "maillog")
    pos = os.path.getsize(log)
    active_dir = os.path.join(box.dir, "queue", "active")
    t0 = time.time()
    box.mailctl("flush", check=True)
    done = peak = 0
    scans = []
    rest = b""
    while done < n and time.time() - t0 < 1200:
        with open(log, "rb") as f:
            f.seek(pos)
            chunk = f.read()
        pos += len(chunk)
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for ln in lines:
            if b"status=deferred (bench" in ln:
                done += 1
            elif b"scan deferred:" in ln:
                scans.append(ln.decode(errors="replace").split("qmgr")[-1])
        peak = max(peak, len(os.listdir(active_dir)))
        time.sleep(0.2)
    took = time.time() - t0
    print("flush: %d of %d messages retried and deferred again in %.1fs (%.0f/s); "
          "peak of active/: %d files" % (done, n, took, done / took if took else 0, peak))
    for s in scans:
        print("  " + s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--scans", type=int, default=3, help="periodic scans to time")
    ap.add_argument("--strace", action="store_true", help="count qmgr's syscalls in one scan")
    ap.add_argument("--flush", action="store_true",
                    help="then flush: retry all of them (routed to a transport that defers) "
                         "and report the peak of active/ and the time to defer them all again")
    ap.add_argument("--active-limit", default="1000", help="qmgr_message_active_limit")
    args = ap.parse_args()

    box = harness.Sandbox(domain="bench.test", params={
        "queue_run_delay": "5s",
        "qmgr_message_active_limit": args.active_limit,
        # Every retry is deferred again at once, without a delivery agent.
        "default_transport": "error:4.4.1 bench: deferred again",
        "delay_warning_time": "0",
    })
    try:
        deferred = os.path.join(box.dir, "queue", "deferred")
        later = time.time() + 86400
        ids = set()
        t0 = time.time()
        while len(ids) < args.files:
            ids.add("".join(random.choice(ALPHABET) for _ in range(16)))
        for i, qid in enumerate(ids):
            path = os.path.join(deferred, qid)
            with open(path, "wb") as f:
                f.write(queue_file(b"alice@bench.test", b"r%d@far.test" % i,
                                   b"Subject: deferred %d\n\nbody\n" % i))
            os.utime(path, (later, later))
        print("created %d deferred files in %.1fs" % (args.files, time.time() - t0))

        box.start()
        rx = re.compile(r"qmgr\[(\d+)\]: scan deferred: (\d+) files? to process "
                        r"\((\d+) seen, \d+ left for later: todo list full, ([0-9.]+)s\)")
        seen_lines = []
        deadline = time.time() + 60 + 10 * args.scans
        pid = None
        traced = None
        while len(seen_lines) < args.scans + 1 and time.time() < deadline:
            seen_lines = [m for m in rx.finditer(box.log())]
            if seen_lines and pid is None:
                pid = int(seen_lines[0].group(1))
            if args.strace and pid and traced is None and len(seen_lines) >= 1:
                # Trace across the next periodic scan (queue_run_delay = 5s).
                out = os.path.join(box.dir, "strace.txt")
                traced = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                n_before = len(seen_lines)
                while len([m for m in rx.finditer(box.log())]) <= n_before and \
                        time.time() < deadline:
                    time.sleep(0.2)
                traced.terminate()
                traced.wait()
                with open(out) as f:
                    traced = f.read()
            time.sleep(0.2)
        for m in seen_lines:
            print("scan deferred: due=%s seen=%s time=%ss" % (m.group(2), m.group(3), m.group(4)))
        if isinstance(traced, str):
            print("strace -c of qmgr over one periodic scan:")
            print(traced)
        active = len(os.listdir(os.path.join(box.dir, "queue", "active")))
        print("files in active/ after the scans: %d (none were due)" % active)
        if args.flush:
            flush(box, args.files)
    finally:
        box.close()


if __name__ == "__main__":
    main()
