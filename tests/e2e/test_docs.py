"""The documentation lists what the programs really have."""

import os
import subprocess
import unittest

from harness import REPO, Sandbox


class ConfigReference(unittest.TestCase):
    def test_every_parameter_is_in_docs_config_md(self):
        out = subprocess.run([Sandbox.bin("mailctl"), "config", "-d"], capture_output=True,
                             text=True, check=True).stdout
        names = [line.split(" = ", 1)[0] for line in out.splitlines() if " = " in line]
        self.assertGreater(len(names), 50)
        with open(os.path.join(REPO, "docs", "config.md")) as f:
            doc = f.read()
        missing = [n for n in names if "| `%s` |" % n not in doc]
        self.assertEqual(missing, [], "run scripts/update-config-doc")

    def test_generated_table_is_current(self):
        table = subprocess.run([Sandbox.bin("mailctl"), "config", "--markdown"],
                               capture_output=True, text=True, check=True).stdout
        with open(os.path.join(REPO, "docs", "config.md")) as f:
            doc = f.read()
        self.assertIn(table.strip(), doc, "run scripts/update-config-doc")


if __name__ == "__main__":
    unittest.main()
