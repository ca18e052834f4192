"""The web page's weight and time to interactive in headless Chromium (Debian's, driven by
Playwright), against a running `hearth serve`.

Usage: target/ui-venv/bin/python bench/ui.py URL [LOADS]   (scripts/ui-tests makes the venv)

Each load is a fresh browser context (nothing cached). "Interactive" is when the page has
listed the server's models and a message can be sent: the model picker holds a model.
"""

import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "ui"))
import browser  # noqa: E402  (the UI tests' way of starting chromium)


def main():
    url = sys.argv[1].rstrip("/")
    loads = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    interactive, loaded, sizes = [], [], set()
    with sync_playwright() as p:
        chromium = browser.launch(p)
        for _ in range(loads):
            context = chromium.new_context()
            page = context.new_page()
            bodies = {}
            page.on("response", lambda r: "/ui/" in r.url and r.status < 300 and bodies.__setitem__(r.url, len(r.body())))
            started = time.monotonic()
            page.goto(url + "/")
            page.wait_for_selector("#model-picker option:not([value=''])", state="attached", timeout=30000)
            interactive.append((time.monotonic() - started) * 1000)
            loaded.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
            sizes.add((len([u for u in bodies if "/ui/" in u]), sum(n for u, n in bodies.items() if "/ui/" in u)))
            context.close()
        chromium.close()
    for files, total in sorted(sizes):
        print(f"page: {files} files, {total} bytes ({total / 1024:.1f} KiB) uncompressed")
    for name, values in [("load event", loaded), ("interactive", interactive)]:
        print(f"{name}: median {statistics.median(values):.0f} ms, min {min(values):.0f}, max {max(values):.0f} "
              f"over {len(values)} loads")


if __name__ == "__main__":
    main()
