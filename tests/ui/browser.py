"""Debian's chromium as the UI tests and bench/ui.py start it: headless, through Playwright
(which is pointed at it and downloads no browser of its own)."""

import os

CHROMIUM = os.environ.get("HEARTH_CHROMIUM", "/usr/bin/chromium")
# No sandbox as root, and none of the background connections this machine's closed network
# refuses (they slow every start).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
