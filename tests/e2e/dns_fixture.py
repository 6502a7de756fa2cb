"""A real `unbound` DNS server on loopback that serves the tests' zones.

tegami's smtp client resolves MX/A/AAAA through libunbound, forwarding to
the servers in `resolver_address` (ip@port). End-to-end tests point that
parameter at this fixture, which runs /usr/sbin/unbound in the foreground
on 127.0.0.1:<free port> with the test zones as local data (no recursion,
nothing leaves the machine).

    from dns_fixture import DnsServer

    dns = DnsServer({
        "b.test": ["b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.3"],
        "null.test": ["null.test. MX 0 ."],
    })
    dns.start()                    # returns once unbound answers
    sandbox.set_param("resolver_address", dns.address)   # "127.0.0.1@PORT"
    ...
    dns.set_zone("b.test", [...])  # change a zone while unbound runs
    dns.stop()                     # SIGTERM by PID, then SIGKILL

Each key of the zones dict becomes `local-zone: "<zone>." static`, so a
name in the zone without data answers NXDOMAIN/NODATA authoritatively; each
record is a `local-data` line (owner names should be absolute, with the
final dot). Names under "test." that belong to no declared zone get
NXDOMAIN from unbound's own RFC 6761 "test." zone. `nxdomain=[...]`
declares extra zones that answer NXDOMAIN for everything, and `servfail=[...]`
zones that answer SERVFAIL (unbound's "refuse" type gives REFUSED, which
libunbound reports as a temporary failure).

Note on libunbound (see libmail/dns.c): the library itself answers "test."
names with NXDOMAIN unless the built-in zone is removed; dns.c removes it
whenever forwarders are configured, which is why tests must set
`resolver_address`.

unbound's control channel (a UNIX socket in the scratch directory, no
certificates) is enabled so set_zone() can change data at run time with
unbound-control; unbound's log is at `dns.logfile`.
"""

import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from harness import random_port

UNBOUND = "/usr/sbin/unbound"
UNBOUND_CONTROL = "/usr/sbin/unbound-control"

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "MX": 15, "TXT": 16, "AAAA": 28, "TLSA": 52}


def _free_udp_tcp_port(host="127.0.0.1"):
    for _ in range(200):
        port = random_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind((host, port))
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port for unbound")


def query(name, qtype, server=("127.0.0.1", 53), timeout=1.0):
    """Send one DNS query over UDP; return (rcode, answer_count) or None on
    timeout. Enough to know the server is up and what it says."""
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        packet += bytes([len(label)]) + label.encode()
    packet += b"\0" + struct.pack(">HH", QTYPES[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(packet, server)
        data, _ = s.recvfrom(4096)
    except (socket.timeout, OSError):
        return None
    finally:
        s.close()
    if len(data) < 12:
        return None
    rid, flags, _, ancount, _, _ = struct.unpack(">HHHHHH", data[:12])
    if rid != qid:
        return None
    return flags & 0xF, ancount


class DnsServer:
    """See the module docstring."""

    def __init__(self, zones=None, nxdomain=(), servfail=(), host="127.0.0.1"):
        self.zones = {z.rstrip(".").lower(): list(rrs) for z, rrs in (zones or {}).items()}
        self.nxdomain = [z.rstrip(".") for z in nxdomain]
        self.servfail = [z.rstrip(".") for z in servfail]
        self.host = host
        self.port = None
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="tegami-dns-")
        self.conf = os.path.join(self.dir, "unbound.conf")
        self.logfile = os.path.join(self.dir, "unbound.log")
        self.control = os.path.join(self.dir, "control.sock")

    @property
    def address(self):
        """The value for tegami's resolver_address parameter."""
        return "%s@%d" % (self.host, self.port)

    def _write_conf(self):
        q = '"%s"'
        lines = [
            "server:",
            "  interface: %s@%d" % (self.host, self.port),
            "  port: %d" % self.port,
            "  do-ip6: no",
            "  do-not-query-localhost: no",
            "  access-control: 127.0.0.0/8 allow",
            '  username: ""',
            '  chroot: ""',
            "  directory: " + q % self.dir,
            "  pidfile: " + q % os.path.join(self.dir, "unbound.pid"),
            "  logfile: " + q % self.logfile,
            "  use-syslog: no",
            "  verbosity: 1",
            '  module-config: "iterator"',
            "  num-threads: 1",
            "  rrset-cache-size: 1m",
            "  msg-cache-size: 1m",
        ]
        for zone, rrs in self.zones.items():
            lines.append('  local-zone: "%s." static' % zone)
            for rr in rrs:
                lines.append("  local-data: " + q % rr.replace('"', '\\"'))
        for zone in self.nxdomain:
            lines.append('  local-zone: "%s." always_nxdomain' % zone)
        for zone in self.servfail:
            lines.append('  local-zone: "%s." always_refuse' % zone)
        lines += [
            "remote-control:",
            "  control-enable: yes",
            "  control-interface: " + q % self.control,
            "  control-use-cert: no",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=15):
        if not os.access(UNBOUND, os.X_OK):
            raise AssertionError("%s is missing (scripts/deps installs it)" % UNBOUND)
        self.port = _free_udp_tcp_port(self.host)
        self._write_conf()
        chk = subprocess.run(["unbound-checkconf", self.conf], capture_output=True, text=True)
        if chk.returncode != 0:
            raise AssertionError("unbound.conf rejected: %s%s" % (chk.stdout, chk.stderr))
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = next(iter(self.zones), None) or "localhost"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("unbound exited with %d: %s" % (self.proc.returncode,
                                                                     self._log_tail()))
            if query(probe, "A", (self.host, self.port), 0.3) is not None:
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError("unbound does not answer on %s: %s" % (self.address, self._log_tail()))

    def _log_tail(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def _control(self, *args, input=None):
        p = subprocess.run([UNBOUND_CONTROL, "-c", self.conf, *args], input=input,
                           capture_output=True, text=True, timeout=15)
        if p.returncode != 0:
            raise AssertionError("unbound-control %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def set_zone(self, zone, rrs):
        """Replace a zone's data while unbound runs (also adds a new zone)."""
        zone = zone.rstrip(".").lower()
        if zone in self.zones:
            self._control("local_zone_remove", zone + ".")
        self._control("local_zone", zone + ".", "static")
        for rr in rrs:
            self._control("local_data", *rr.split())
        self._control("flush_zone", zone + ".")
        self.zones[zone] = list(rrs)

    def query(self, name, qtype="A"):
        """(rcode, answer count) from the fixture, for sanity checks in tests."""
        return query(name, qtype, (self.host, self.port))

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            self.proc = None
        if os.environ.get("TEGAMI_KEEP"):
            print("kept unbound directory", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
