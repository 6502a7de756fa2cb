"""End-to-end tests of the local delivery agent: Maildir delivery with
Return-Path and Delivered-To, aliases (fan-out, loops, unknown targets,
forwarding) and mail-loop detection, driven through SMTP on a sandbox."""

import os
import smtplib
import time
import unittest
import uuid

from harness import Sandbox

ALIASES = """\
# test aliases for test_local.py
team: bob, carol
loopa: loopb
loopb: loopa
circle: frank, circle2
circle2: circle, frank
broken: nosuchuser
outside: someone@remote.test
"""


class LocalDeliveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox()
        for user in ("alice", "bob", "carol", "frank", "snd"):
            cls.sb.user_add(user, "pw-" + user)
        cls.sb.write_aliases(ALIASES)
        cls.sb.start()

    @classmethod
    def tearDownClass(cls):
        cls.sb.close()

    # --- helpers ----------------------------------------------------------
    def send(self, sender, rcpts, data):
        if isinstance(data, str):
            data = data.encode()
        with smtplib.SMTP(self.sb.host, self.sb.port("smtp"), timeout=30) as s:
            s.ehlo("client.example.test")
            refused = s.sendmail(sender, rcpts, data)
            self.assertEqual(refused, {})

    def find(self, user, needle, timeout=30):
        return self.sb.find_messages(user, needle, timeout)

    def settle(self):
        self.assertTrue(self.sb.wait_queue_empty(timeout=30), "queue did not drain")
        time.sleep(0.3)

    @staticmethod
    def tag():
        return uuid.uuid4().hex

    # --- tests ------------------------------------------------------------
    def test_delivery_adds_return_path_and_delivered_to_and_keeps_content(self):
        t = self.tag()
        headers = ("From: Sender <snd@example.test>\r\n"
                   "To: alice@example.test\r\n"
                   "Subject: local %s\r\n"
                   "X-Custom: keep me\r\n"
                   "\r\n" % t)
        body_lines = ["first line", "", ".a line that starts with a dot", "..two dots",
                      "tabs\tand  spaces  ", "x" * 900, "last line " + t]
        body = "\r\n".join(body_lines) + "\r\n"
        self.send("snd@example.test", ["alice@example.test"], headers + body)
        found = self.find("alice", "local " + t)
        self.assertEqual(len(found), 1, "message not delivered once")
        with open(found[0], "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"Return-Path: <snd@example.test>\n"
                                        b"Delivered-To: alice@example.test\n"), data[:200])
        head, sep, stored_body = data.partition(b"\n\n")
        self.assertEqual(sep, b"\n\n")
        for h in (b"From: Sender <snd@example.test>", b"To: alice@example.test",
                  b"Subject: local " + t.encode(), b"X-Custom: keep me", b"Received: "):
            self.assertIn(h, head)
        self.assertNotIn(b"\r", data, "stored message must use LF line ends")
        self.assertEqual(stored_body, body.replace("\r\n", "\n").encode())
        self.sb.expect_log(r"to=<alice@example\.test>, relay=local, .*"
                           r"status=sent \(delivered to maildir")

    def test_extension_is_delivered_to_user_with_full_delivered_to(self):
        t = self.tag()
        self.send("snd@example.test", ["Alice+Lists@Example.TEST"],
                  "Subject: ext %s\r\n\r\nbody\r\n" % t)
        found = self.find("alice", "ext " + t)
        self.assertEqual(len(found), 1)
        with open(found[0], "rb") as f:
            data = f.read()
        self.assertIn(b"\nDelivered-To: alice+lists@example.test\n", data)

    def test_alias_to_two_users_delivers_to_both(self):
        t = self.tag()
        self.send("snd@example.test", ["team@example.test"], "Subject: team %s\r\n\r\nhi\r\n" % t)
        for user in ("bob", "carol"):
            found = self.find(user, "team " + t)
            self.assertEqual(len(found), 1, user)
            with open(found[0], "rb") as f:
                data = f.read()
            self.assertIn(b"\nDelivered-To: %s@example.test\n" % user.encode(), data)
        self.sb.expect_log_text("orig_to=<team@example.test>")

    def test_alias_loop_with_a_user_delivers_once(self):
        t = self.tag()
        self.send("snd@example.test", ["circle@example.test"],
                  "Subject: circle %s\r\n\r\nround\r\n" % t)
        self.assertEqual(len(self.find("frank", "circle " + t)), 1)
        self.settle()
        self.assertEqual(len(self.find("frank", "circle " + t, timeout=0)), 1)

    def test_pure_alias_loop_bounces_instead_of_looping(self):
        t = self.tag()
        self.send("snd@example.test", ["loopa@example.test"],
                  "Subject: loop %s\r\n\r\nround and round\r\n" % t)
        bounces = self.find("snd", "loop " + t)
        self.assertGreaterEqual(len(bounces), 1, "no bounce for an alias loop")
        with open(bounces[0], "rb") as f:
            self.assertIn(b"5.4.6", f.read())
        self.settle()

    def test_existing_delivered_to_header_bounces_with_5_4_6(self):
        t = self.tag()
        self.send("snd@example.test", ["alice@example.test"],
                  "Delivered-To: alice@example.test\r\n"
                  "Subject: dt %s\r\n\r\nbeen here\r\n" % t)
        bounces = self.find("snd", "dt " + t)
        self.assertGreaterEqual(len(bounces), 1, "sender got no DSN")
        with open(bounces[0], "rb") as f:
            dsn = f.read()
        self.assertIn(b"5.4.6", dsn)
        self.settle()
        self.assertEqual(self.find("alice", "dt " + t, timeout=0), [])
        self.sb.expect_log_text("mail forwarding loop for alice@example.test")

    def test_unknown_user_behind_alias_bounces(self):
        t = self.tag()
        self.send("snd@example.test", ["broken@example.test"],
                  "Subject: broken %s\r\n\r\nnobody home\r\n" % t)
        bounces = self.find("snd", "broken " + t)
        self.assertGreaterEqual(len(bounces), 1, "sender got no DSN")
        with open(bounces[0], "rb") as f:
            self.assertIn(b"5.1.1", f.read())
        self.sb.expect_log_text("to=<nosuchuser@example.test>, orig_to=<broken@example.test>")

    def test_remote_alias_target_is_forwarded_as_new_queue_file(self):
        t = self.tag()
        self.send("snd@example.test", ["outside@example.test"],
                  "Subject: fwd %s\r\n\r\naway\r\n" % t)
        self.sb.expect_log_text("to=<someone@remote.test>, orig_to=<outside@example.test>")
        self.sb.expect_log_text("forwarded as")


if __name__ == "__main__":
    unittest.main()
