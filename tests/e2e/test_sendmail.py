"""sendmail(8): local submission, with the daemons down and up."""

import os
import time
import unittest
from email import message_from_bytes

from harness import Sandbox


class SendmailWhileStopped(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox()
        self.sb.user_add("alice", "pw")
        self.sb.user_add("bob", "pw")
        self.sb.user_add("carol", "pw")

    def tearDown(self):
        self.sb.close()

    def test_t_with_daemons_stopped_waits_in_maildrop_then_delivers_without_bcc(self):
        msg = (b"To: alice@example.test\n"
               b"Cc: Bob <bob@example.test>\n"
               b"Bcc: carol@example.test\n"
               b"Subject: offline\n"
               b"\n"
               b"written while tegami was stopped\n"
               b".\n"
               b"this line comes after a lone dot and -i keeps it\n")
        self.sb.sendmail(["-t", "-i", "-f", "sender@example.test"], msg)
        self.assertEqual(len(self.sb.queue_files("maildrop")), 1, "mail must wait in maildrop")
        self.assertEqual(self.sb.messages("alice"), [])
        self.sb.start()
        for user in ("alice", "bob", "carol"):
            files = self.sb.wait_messages(user, 1)
            self.assertEqual(len(files), 1, "%s got no mail" % user)
            with open(files[0], "rb") as f:
                data = f.read()
            m = message_from_bytes(data)
            self.assertIsNone(m["Bcc"], "Bcc must be removed")
            self.assertEqual(m["Subject"], "offline")
            self.assertIsNotNone(m["Message-ID"])
            self.assertIsNotNone(m["Date"])
            self.assertIsNotNone(m["From"])
            self.assertIn(b"after a lone dot and -i keeps it", data)
            self.assertEqual(m["Return-Path"], "<sender@example.test>")
        self.assertTrue(self.sb.wait_queue_empty())

    def test_recipient_arguments_and_dot_ends_input_without_i(self):
        self.sb.start()
        self.sb.sendmail(["bob@example.test"], b"Subject: args\n\nfirst\n.\nnot sent\n")
        files = self.sb.wait_messages("bob", 1)
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            data = f.read()
        self.assertIn(b"first\n", data)
        self.assertNotIn(b"not sent", data)


if __name__ == "__main__":
    unittest.main()
