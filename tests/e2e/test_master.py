"""master: supervision, restart, reload, stop, single instance."""

import os
import signal
import socket
import subprocess
import time
import unittest

from harness import Sandbox


def alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def banner(host, port, timeout=10):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        data = b""
        while b"\n" not in data:
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
        try:
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        return data.decode(errors="replace")


def wait_for(pred, timeout=15, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


class MasterSupervision(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    def smtpd_pids(self):
        return self.sb.service_pids("smtpd")

    def test_smtp_port_answers_220(self):
        self.assertTrue(banner(self.sb.host, self.sb.port("smtp")).startswith("220"))

    def test_killed_smtpd_is_restarted_and_logged(self):
        before = wait_for(self.smtpd_pids)
        self.assertTrue(before, "no smtpd process in status: %s" % self.sb.status())
        # Kill every smtpd: master keeps at least one process per service, so a
        # fresh one must appear (killing one of two idle ones needs no replacement).
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        after = wait_for(lambda: [p for p in self.smtpd_pids() if p not in before])
        self.assertTrue(after, "no new smtpd after kill: %s" % self.sb.status())
        self.assertFalse([p for p in before if p in self.smtpd_pids()])
        self.assertTrue(banner(self.sb.host, self.sb.port("smtp")).startswith("220"))
        for pid in before:
            self.assertTrue(wait_for(lambda: "pid %d killed by signal 9" % pid in self.sb.log(),
                                     timeout=5), self.sb.log()[-2000:])
        self.assertNotIn("throttled", self.sb.log())

    def test_reload_keeps_listeners_and_replaces_processes(self):
        master = self.sb.master_pid()
        before = wait_for(self.smtpd_pids)
        # A session open across the reload is finished, not cut off.
        s = socket.create_connection((self.sb.host, self.sb.port("smtp")), timeout=10)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220"))
        self.sb.reload()
        self.assertEqual(self.sb.master_pid(), master)
        # The command in flight is answered; smtpd may then close the
        # session politely (421) to pick up the new configuration.
        s.sendall(b"NOOP\r\n")
        self.assertTrue(f.readline().startswith(b"250"))
        s.sendall(b"QUIT\r\n")
        reply = f.readline()
        self.assertTrue(reply.startswith((b"221", b"421")), reply)
        f.close()
        s.close()
        self.assertTrue(banner(self.sb.host, self.sb.port("smtp")).startswith("220"))
        self.assertTrue(wait_for(lambda: not any(p in self.smtpd_pids() for p in before)),
                        "old smtpd processes survive the reload: %s" % self.sb.status())
        self.assertIn("reload", self.sb.log())

    def test_second_master_refuses_to_start(self):
        p = subprocess.run([self.sb.bin("master"), "-c", self.sb.dir], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("already running", p.stderr)
        # and the first one is unharmed
        self.assertTrue(alive(self.sb.master_pid()))
        self.assertTrue(banner(self.sb.host, self.sb.port("smtp")).startswith("220"))

    def test_config_check_mode_accepts_sandbox_config(self):
        p = subprocess.run([self.sb.bin("master"), "-c", self.sb.dir, "-t"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)


class MasterStop(unittest.TestCase):
    def test_stop_leaves_no_process_behind(self):
        with Sandbox() as sb:
            sb.start()
            master = sb.master_pid()
            self.assertTrue(master)
            pids = []
            for cmd in ("smtpd", "qmgr", "pickup", "pop3d", "local"):
                pids += sb.service_pids(cmd)
            self.assertTrue(pids, sb.status())
            sb.stop()
            self.assertFalse(alive(master))
            left = [p for p in pids if alive(p)]
            self.assertEqual(left, [], "processes left after stop")
            self.assertFalse(os.path.exists(sb.pid_file()))
            with self.assertRaises(OSError):
                socket.create_connection((sb.host, sb.port("smtp")), timeout=2).close()
            # and it starts again on the same ports
            sb.start()
            self.assertTrue(banner(sb.host, sb.port("smtp")).startswith("220"))
            sb.stop()


class MasterThrottle(unittest.TestCase):
    def test_service_that_keeps_dying_is_throttled_and_others_run_on(self):
        with Sandbox(params={"service_throttle_time": "30s", "service_throttle_limit": "3"}) as sb:
            with open(os.path.join(sb.dir, "master.cf"), "a") as f:
                f.write("broken   unix  -  -  n  -  nosuchdaemon\n")
            # mailctl start may refuse a missing command; master itself must cope.
            p = subprocess.run([sb.bin("master"), "-c", sb.dir], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            sb.running = True
            log = wait_for(lambda: "throttled" in sb.log() and sb.log(), timeout=15)
            self.assertTrue(log, sb.log()[-2000:])
            self.assertIn("service broken (nosuchdaemon) throttled", log)
            self.assertEqual(log.count("nosuchdaemon pid"), 4, log)  # limit 3: 4th throttles
            time.sleep(1)
            self.assertEqual(sb.log().count("nosuchdaemon pid"), 4)  # no restarts meanwhile
            self.assertTrue(banner(sb.host, sb.port("smtp")).startswith("220"))
            sb.stop()


if __name__ == "__main__":
    unittest.main()
