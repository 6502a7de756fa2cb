"""Test harness: a throw-away tegami sandbox on free loopback ports.

Every end-to-end test drives a real running instance made with the public
command line (`mailctl init --sandbox`, `mailctl start`), exactly as a user
would, and talks to it with independent clients (smtplib, poplib, swaks).

The build directory is $TEGAMI_BUILD (default: <repo>/build); programs are
taken from its bin/.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TEGAMI_BUILD", os.path.join(REPO, "build"))
BIN = os.path.join(BUILD, "bin")

STANDARD_PORTS = {
    "smtp": 25,
    "submission": 587,
    "smtps": 465,
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imaps": 993,
}


def _port_free(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def random_port(span=0):
    """A random port P, with P + span still below the kernel's ephemeral
    port range.

    A port that is free when a test checks it must stay free until a daemon
    binds it, maybe seconds later. Inside the ephemeral range any outgoing
    connection of a parallel test (or of a daemon) could take it meanwhile;
    below the range only an explicit bind can.
    """
    high = max(_ephemeral_low() - span - 1, 11000)
    return random.randrange(10000, high)


def free_port_offset(host="127.0.0.1"):
    """An offset N such that N + every standard port is free right now."""
    for _ in range(200):
        # Any offset, not only round ones: test modules run in parallel
        # (scripts/test-all), and two sandboxes then rarely share a port.
        n = random_port(max(STANDARD_PORTS.values()))
        if all(_port_free(host, n + p) for p in STANDARD_PORTS.values()):
            return n
    raise RuntimeError("no free port offset found")


class Sandbox:
    """One sandbox instance. Create, add users, start(); close() at the end."""

    def __init__(self, domain="example.test", address="127.0.0.1", port_offset=None,
                 params=None):
        self.domain = domain
        self.host = address
        self.offset = port_offset if port_offset is not None else free_port_offset(address)
        self.dir = tempfile.mkdtemp(prefix="tegami-e2e-")
        self.running = False
        args = ["init", "--sandbox", "--domain", domain,
                "--port-offset", str(self.offset), "--address", address]
        self.mailctl(*args, check=True)
        for name, value in (params or {}).items():
            self.set_param(name, value)

    # --- programs -------------------------------------------------------
    @staticmethod
    def bin(name):
        return os.path.join(BIN, name)

    def mailctl(self, *args, input=None, check=False, timeout=60):
        p = subprocess.run([self.bin("mailctl"), "-c", self.dir, *args], input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("mailctl %s failed (%d): %s%s" %
                                 (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def sendmail(self, args, message, check=True, timeout=30):
        if isinstance(message, str):
            message = message.encode()
        p = subprocess.run([self.bin("sendmail"), "-C", self.dir, *args], input=message,
                           capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("sendmail failed (%d): %r" % (p.returncode, p.stderr))
        return p

    # --- life cycle -----------------------------------------------------
    def start(self):
        self.mailctl("start", check=True)
        self.running = True

    def stop(self):
        self.mailctl("stop", check=True)
        self.running = False

    def reload(self):
        self.mailctl("reload", check=True)
        time.sleep(0.5)

    def close(self):
        try:
            if self.running or os.path.exists(self.pid_file()):
                self.mailctl("stop")
        finally:
            pid = self.master_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if os.environ.get("TEGAMI_KEEP"):
                print("kept sandbox", self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- configuration --------------------------------------------------
    def port(self, service):
        return self.offset + STANDARD_PORTS[service]

    def set_param(self, name, value):
        """Set name = value in main.cf (replacing an existing line)."""
        path = os.path.join(self.dir, "main.cf")
        with open(path) as f:
            lines = f.read().splitlines()
        out, done = [], False
        for line in lines:
            if line.split("=", 1)[0].strip() == name and not line.startswith((" ", "\t", "#")):
                out.append("%s = %s" % (name, value))
                done = True
            else:
                out.append(line)
        if not done:
            out.append("%s = %s" % (name, value))
        # Replace the file whole: a daemon (re)starting right now must never
        # read a half-written main.cf.
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(out) + "\n")
        os.replace(path + ".tmp", path)

    def user_add(self, name, password):
        self.mailctl("user", "add", name, input=password + "\n", check=True)

    def write_aliases(self, text):
        with open(os.path.join(self.dir, "aliases"), "w") as f:
            f.write(text)
        self.mailctl("newaliases", check=True)

    # --- observation ----------------------------------------------------
    def pid_file(self):
        return os.path.join(self.dir, "queue", "pid", "master.pid")

    def master_pid(self):
        try:
            with open(self.pid_file()) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def status(self):
        return self.mailctl("status").stdout

    def service_pids(self, command):
        """PIDs of the processes of every service whose command is `command`."""
        pids = []
        for line in self.status().splitlines():
            words = line.split()
            if command in words or (words and words[0] == command):
                for w in words:
                    if w.startswith("pids="):
                        pids += [int(x) for x in w[5:].split(",") if x.isdigit()]
        return pids

    def maildir(self, user):
        return os.path.join(self.dir, "mail", user, "Maildir")

    def messages(self, user):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(user), sub)
            if os.path.isdir(d):
                out += [os.path.join(d, n) for n in sorted(os.listdir(d)) if not n.startswith(".")]
        return out

    def wait_messages(self, user, n, timeout=30):
        """Wait until user's Maildir holds at least n messages; return their paths."""
        deadline = time.time() + timeout
        while True:
            msgs = self.messages(user)
            if len(msgs) >= n or time.time() > deadline:
                return msgs
            time.sleep(0.05)

    def find_messages(self, user, needle, timeout=30, count=1):
        """Paths of user's messages containing needle (bytes or str), waiting
        up to timeout seconds for at least count of them."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.time() + timeout
        while True:
            found = []
            for path in self.messages(user):
                try:
                    with open(path, "rb") as f:
                        if needle in f.read():
                            found.append(path)
                except FileNotFoundError:
                    pass  # moved new/ -> cur/ meanwhile
            if len(found) >= count or time.time() > deadline:
                return found
            time.sleep(0.05)

    def queue_files(self, *dirs):
        dirs = dirs or ("maildrop", "incoming", "active", "deferred", "hold")
        out = []
        for d in dirs:
            p = os.path.join(self.dir, "queue", d)
            if os.path.isdir(p):
                out += [os.path.join(p, n) for n in os.listdir(p) if not n.startswith(".")]
        return out

    def queue_json(self):
        p = self.mailctl("queue", "list", "--json", check=True)
        return json.loads(p.stdout or "[]")

    def wait_queue_empty(self, timeout=30, dirs=("maildrop", "incoming", "active")):
        deadline = time.time() + timeout
        while self.queue_files(*dirs) and time.time() < deadline:
            time.sleep(0.05)
        return not self.queue_files(*dirs)

    def log(self):
        try:
            with open(os.path.join(self.dir, "log", "maillog"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=30):
        """Waits until a line of the log matches the regular expression
        pattern and returns the match, or None after timeout seconds.
        Daemons log asynchronously to what a client sees (local logs after
        the rename into new/, qmgr holds its lines until it goes idle), so
        a test that checks the log after an event waits for the line."""
        deadline = time.time() + timeout
        while True:
            m = re.search(pattern, self.log())
            if m or time.time() > deadline:
                return m
            time.sleep(0.05)

    def expect_log(self, pattern, timeout=30):
        """wait_log that fails the test (AssertionError, with the log's
        tail) when no line matches."""
        m = self.wait_log(pattern, timeout)
        if not m:
            raise AssertionError("no log line matches %r; log ends:\n%s"
                                 % (pattern, self.log()[-3000:]))
        return m

    def expect_log_text(self, text, timeout=30):
        """expect_log for a literal text."""
        return self.expect_log(re.escape(text), timeout)
