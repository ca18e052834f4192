"""The web page in a real browser: Debian's chromium, driven headless by Playwright, against
real `hearth serve` processes on 127.0.0.1 with the SmolLM2 test model.

Run by scripts/ui-tests, which sets HEARTH_BIN, HEARTH_TEST_GGUF and HEARTH_UI_ARTIFACTS
(where the screenshots go). Nothing here reaches beyond this machine: the browser is started
without its background services, and the page's policy lets it load only its own files.
"""

import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

import browser

HEARTH = os.environ["HEARTH_BIN"]
GGUF = Path(os.environ["HEARTH_TEST_GGUF"])
ARTIFACTS = Path(os.environ.get("HEARTH_UI_ARTIFACTS", "target/ui-artifacts"))
MODEL = "smollm2:135m"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class QuietFiles(http.server.ThreadingHTTPServer):
    """Serves a file the way a model host does; a pull closes the connections of the parts it
    fetches in parallel when it has what it needs, which is not an error here."""

    def handle_error(self, request, client_address):
        pass


class Server:
    """A `hearth serve` of the test's own, with its own store (and keys file)."""

    def __init__(self, keys=False):
        self.scratch = Path(tempfile.mkdtemp(prefix="hearth-ui-"))
        self.env = dict(os.environ, HEARTH_MODELS=str(self.scratch / "models"))
        self.env["HEARTH_KEYS_FILE"] = str(self.scratch / "keys.json")
        self.env["HEARTH_USAGE_FILE"] = str(self.scratch / "usage.json")
        self.env["HEARTH_BENCH_HISTORY"] = str(self.scratch / "history.jsonl")
        # Prices configured, so answers carry their carbon and cost for the page to show.
        self.env.update(HEARTH_GRID_INTENSITY="400", HEARTH_ENERGY_PRICE="0.30", HEARTH_CURRENCY="EUR")
        (self.scratch / "Modelfile").write_text(f"FROM {GGUF}\n")
        self.hearth("create", MODEL, "-f", str(self.scratch / "Modelfile"))
        self.key = self.hearth("keys", "create", "ui-test", "--scope", "admin").strip().split()[-1] if keys else None
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(self.scratch / "serve.log", "w")
        self.process = subprocess.Popen(
            [HEARTH, "serve", "--threads", "1", "--parallel", "2"],
            env=dict(self.env, HEARTH_HOST=f"127.0.0.1:{port}"),
            stderr=self.log,
        )
        for _ in range(200):
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("hearth serve did not start")

    def hearth(self, *args):
        return subprocess.run([HEARTH, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def metric(self, name):
        request = urllib.request.Request(self.url + "/metrics")
        if self.key:
            request.add_header("Authorization", f"Bearer {self.key}")
        with urllib.request.urlopen(request, timeout=5) as answer:
            text = answer.read().decode()
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(match.group(1))

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class Page(unittest.TestCase):
    """One browser for all tests; a fresh context (empty storage) per test unless it says."""

    @classmethod
    def setUpClass(cls):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        cls.server = Server()
        cls.playwright = sync_playwright().start()
        cls.chromium = browser.launch(cls.playwright)

    @classmethod
    def tearDownClass(cls):
        cls.chromium.close()
        cls.playwright.stop()
        cls.server.stop()

    def setUp(self):
        self.context = self.chromium.new_context(accept_downloads=True)
        self.problems = []
        self.page = self.open_page(self.context)

    def tearDown(self):
        self.context.close()
        self.assertEqual(self.problems, [], "the page logged errors")

    def open_page(self, context, url=None):
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        page.goto((url or self.server.url) + "/")
        # Ready when the model list has arrived and the picker shows the test model.
        expect(page.locator("#model-picker")).to_have_value(MODEL, timeout=15000)
        expect(page.locator("#models-table tbody tr").first).to_be_attached(timeout=15000)
        return page

    def ask(self, text, page=None):
        page = page or self.page
        page.fill("#prompt", text)
        page.press("#prompt", "Enter")

    def set_option(self, name, value):
        self.page.click("#settings summary")
        self.page.fill(f"#opt-{name}", str(value))
        self.page.click("#settings summary")

    def test_an_answer_streams_in_with_its_figures(self):
        self.set_option("temperature", 0)
        self.page.evaluate(
            """() => {
              window.contentUpdates = 0;
              new MutationObserver(() => {
                const last = document.querySelector('#messages article.assistant:last-child .content');
                if (last && last.textContent && !document.querySelector('#stop').hidden) window.contentUpdates++;
              }).observe(document.querySelector('#messages'), {subtree: true, childList: true, characterData: true});
            }"""
        )
        # Shift+Enter is a new line, not a send.
        self.page.fill("#prompt", "Name three colours")
        self.page.press("#prompt", "Shift+Enter")
        self.page.type("#prompt", "of the rainbow.")
        self.assertEqual(self.page.input_value("#prompt"), "Name three colours\nof the rainbow.")
        expect(self.page.locator("#messages article")).to_have_count(0)
        self.page.press("#prompt", "Enter")
        expect(self.page.locator("#messages article.user .content")).to_have_text("Name three colours\nof the rainbow.")
        stats = self.page.locator("#messages article.assistant .stats")
        expect(stats).to_be_visible(timeout=60000)
        updates = self.page.evaluate("window.contentUpdates")
        self.assertGreater(updates, 1, "the answer arrived in one piece, not streamed")
        per_token = stats.locator('[data-stat="per token"]').inner_text()
        self.assertRegex(per_token, r"[0-9.]+ J/tok")
        for stat in ["prompt", "answer", "TTFT", "speed", "energy", "power", "carbon", "cost"]:
            expect(stats.locator(f'[data-stat="{stat}"]')).to_be_visible()
        expect(stats.locator(".badge")).to_have_text(re.compile("measured|estimated"))
        expect(stats.locator('[data-stat="cost"]')).to_contain_text("EUR")
        expect(stats.locator('[data-stat="carbon"]')).to_contain_text("g CO₂e")
        self.assertTrue(self.page.locator("#messages article.assistant .content").inner_text().strip())
        # The live chart took readings from the server's meter while the answer streamed.
        expect(self.page.locator("#live .live-caption")).to_contain_text("W")

    def test_stop_cancels_the_answer_on_the_server(self):
        self.set_option("num_predict", 2000)
        self.ask("Write a very long story about a dragon who learns to cook. Make it detailed.")
        content = self.page.locator("#messages article.assistant .content")
        expect(content).not_to_be_empty(timeout=60000)
        self.assertGreater(self.server.metric("hearth_requests_in_flight"), 0)
        self.page.keyboard.press("Escape")
        expect(self.page.locator("#messages article.assistant .badge.stopped")).to_be_visible(timeout=10000)
        expect(self.page.locator("#stop")).to_be_hidden()
        deadline = time.time() + 10
        while self.server.metric("hearth_requests_in_flight") != 0 and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.server.metric("hearth_requests_in_flight"), 0)
        generated = len(content.inner_text())
        time.sleep(0.5)
        self.assertEqual(len(content.inner_text()), generated, "text kept arriving after the stop")

    def test_a_reload_keeps_the_conversation_and_its_settings(self):
        self.set_option("seed", 7)
        self.page.click("#settings summary")
        self.page.fill("#system", "You answer in one short sentence.")
        self.ask("What is the capital of France?")
        expect(self.page.locator("#messages article.assistant .stats")).to_be_visible(timeout=60000)
        answer = self.page.locator("#messages article.assistant .content").inner_text()
        self.page.reload()
        expect(self.page.locator("#messages article.user .content")).to_have_text("What is the capital of France?")
        expect(self.page.locator("#messages article.assistant .content")).to_have_text(answer)
        expect(self.page.locator("#conversation-list li.current")).to_contain_text("What is the capital of France?")
        self.assertEqual(self.page.input_value("#system"), "You answer in one short sentence.")
        self.assertEqual(self.page.input_value("#opt-seed"), "7")

    def test_conversations_are_made_switched_and_deleted(self):
        self.set_option("num_predict", 4)
        self.ask("First conversation")
        expect(self.page.locator("#messages article.assistant .stats")).to_be_visible(timeout=60000)
        self.page.click("#new-chat")
        expect(self.page.locator("#messages article")).to_have_count(0)
        expect(self.page.locator("#opt-num_predict")).to_have_value("")
        self.ask("Second conversation")
        expect(self.page.locator("#messages article.assistant .stats")).to_be_visible(timeout=60000)
        items = self.page.locator("#conversation-list li")
        expect(items).to_have_count(2)
        items.filter(has_text="First conversation").locator("button.open").click()
        expect(self.page.locator("#messages article.user .content")).to_have_text("First conversation")
        expect(self.page.locator("#opt-num_predict")).to_have_value("4")
        self.page.click('button[aria-label="Delete the conversation First conversation"]')
        expect(items).to_have_count(1)
        expect(self.page.locator("#messages article.user .content")).to_have_text("Second conversation")

    def test_regenerate_and_edit_and_resend(self):
        self.set_option("temperature", 0)
        self.ask("Say hello.")
        assistant = self.page.locator("#messages article.assistant")
        expect(assistant.locator(".stats")).to_be_visible(timeout=60000)
        first = assistant.locator(".content").inner_text()
        self.page.click('button[aria-label="Regenerate this answer"]')
        expect(assistant.locator(".stats")).to_be_visible(timeout=60000)
        expect(assistant).to_have_count(1)
        self.assertEqual(assistant.locator(".content").inner_text(), first, "greedy regeneration differs")
        self.page.click('button[aria-label="Edit and resend this message"]')
        self.page.fill(".edit-box", "Say goodbye.")
        self.page.press(".edit-box", "Enter")
        expect(self.page.locator("#messages article.user .content")).to_have_text("Say goodbye.")
        expect(assistant.locator(".stats")).to_be_visible(timeout=60000)
        expect(self.page.locator("#messages article")).to_have_count(2)

    def test_conversations_export_as_markdown_and_json(self):
        self.ask("What is two plus two?")
        expect(self.page.locator("#messages article.assistant .stats")).to_be_visible(timeout=60000)
        with self.page.expect_download() as download:
            self.page.click("#export-md")
        text = Path(download.value.path()).read_text()
        self.assertIn("## User\n\nWhat is two plus two?", text)
        self.assertIn("J/tok", text)
        with self.page.expect_download() as download:
            self.page.click("#export-json")
        saved = json.loads(Path(download.value.path()).read_text())
        self.assertEqual([m["role"] for m in saved["messages"]], ["user", "assistant"])
        self.assertEqual(saved["model"], MODEL)

    def test_a_pull_shows_its_progress_and_the_model_can_be_deleted(self):
        files = QuietFiles(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(GGUF.parent)))
        threading.Thread(target=files.serve_forever, daemon=True).start()
        try:
            self.page.click("#tab-models")
            row = self.page.locator(f'#models-table tr[data-model="{MODEL}"]')
            expect(row).to_be_visible()
            # The server's verdict, as `hearth fit` gives it: a 100 MB model fits here.
            expect(row.locator("td.fit")).to_have_text("fits")
            self.assertRegex(row.locator("td.fit").get_attribute("title"), r"needs \d+ MB; [\d.]+ GB available")
            self.page.evaluate(
                """() => {
                  window.progressSeen = [];
                  const bar = document.querySelector('#pull-progress');
                  new MutationObserver(() => window.progressSeen.push(bar.value / (bar.max || 1)))
                    .observe(bar, {attributes: true});
                }"""
            )
            url = f"http://127.0.0.1:{files.server_port}/{GGUF.name}"
            self.page.fill("#pull-name", url)
            self.page.click("#pull-form button")
            expect(self.page.locator("#pull-status")).to_contain_text("pulled", timeout=60000)
            progress = self.page.locator("#pull-progress")
            self.assertEqual(progress.evaluate("b => b.value === b.max"), True)
            self.assertIn(1.0, self.page.evaluate("window.progressSeen"))
            pulled = self.page.locator("#models-table tbody tr").filter(has_text=GGUF.stem)
            expect(pulled).to_have_count(1)
            pulled.locator("button.danger").click()
            expect(pulled).to_have_count(0)
            expect(self.page.locator(f'#models-table tr[data-model="{MODEL}"]')).to_be_visible()
        finally:
            files.shutdown()

    def test_a_bench_report_opens_as_tables_and_a_chart(self):
        report = Path(self.server.scratch / "bench.json")
        report.write_text(self.server.hearth("bench", MODEL, "-p", "32", "-n", "8", "-r", "1", "-t", "1", "--json"))
        self.page.click("#tab-bench")
        self.page.set_input_files("#bench-file", str(report))
        expect(self.page.locator(".bench-report .bench-table").first).to_contain_text(MODEL)
        expect(self.page.locator(".bench-report svg.bench-chart circle").first).to_be_attached()
        wrong = Path(self.server.scratch / "not-a-report.json")
        wrong.write_text('{"hello": 1}')
        self.page.set_input_files("#bench-file", str(wrong))
        expect(self.page.locator("#bench-error")).to_contain_text("not-a-report.json")
        expect(self.page.locator(".bench-report")).to_have_count(0)

    def test_answers_render_markdown_safely(self):
        rendered = self.page.evaluate(
            """async () => {
              const { renderMarkdown } = await import('./markdown.js');
              const box = document.createElement('div');
              box.innerHTML = renderMarkdown(
                '# Title\\n\\n<img src=x onerror="window.pwned=1">\\n\\n[link](javascript:alert(1))\\n\\n' +
                '```python\\ndef f(x):\\n    return "hi"  # note\\n```\\n');
              return {
                images: box.querySelectorAll('img').length,
                links: [...box.querySelectorAll('a')].map(a => a.getAttribute('href')),
                heading: box.querySelector('h1')?.textContent,
                keyword: box.querySelector('pre code .tok-kw')?.textContent,
                string: box.querySelector('pre code .tok-str')?.textContent,
              };
            }"""
        )
        self.assertEqual(rendered["images"], 0)
        self.assertEqual(rendered["links"], [])
        self.assertEqual(rendered["heading"], "Title")
        self.assertEqual(rendered["keyword"], "def")
        self.assertEqual(rendered["string"], '"hi"')
        self.assertIsNone(self.page.evaluate("window.pwned"))

    def test_the_page_loads_nothing_from_elsewhere_and_is_small(self):
        context = self.chromium.new_context()
        page = context.new_page()
        requested, sizes = [], {}
        page.on("request", lambda r: requested.append(r.url))
        page.on("response", lambda r: "/ui/" in r.url and r.status < 300 and sizes.__setitem__(r.url, len(r.body())))
        page.goto(self.server.url + "/")
        expect(page.locator("#model-picker")).to_have_value(MODEL, timeout=15000)
        expect(page.locator("#models-table td.fit").first).not_to_have_text("…")
        self.assertTrue(page.url.endswith("/ui/"), page.url)
        for url in requested:
            self.assertTrue(url.startswith(self.server.url), f"the page fetched {url}")
        # bench/ui.py measures the same with the time to interactive.
        self.assertLess(sum(sizes.values()), 300 * 1024, sizes)
        context.close()
        # Clients that do not ask for HTML still get Ollama's health text at the root.
        with urllib.request.urlopen(self.server.url + "/") as root:
            self.assertEqual(root.read(), b"hearth is running")

    def test_screenshots_light_dark_and_phone_width(self):
        self.set_option("temperature", 0)
        self.ask("Write a Python function that adds two numbers, in a code block.")
        expect(self.page.locator("#messages article.assistant .stats")).to_be_visible(timeout=60000)
        # The same page as it was left after the answer, the live chart beside it.
        for name, scheme, (width, height) in [
            ("chat-light", "light", (1200, 760)),
            ("chat-dark", "dark", (1200, 760)),
            ("chat-phone", "light", (390, 844)),
        ]:
            self.page.emulate_media(color_scheme=scheme)
            self.page.set_viewport_size({"width": width, "height": height})
            self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        # A phone: nothing wider than the screen, and the conversations in a drawer.
        self.assertLessEqual(self.page.evaluate("document.documentElement.scrollWidth"), 390)
        expect(self.page.locator("#sidebar")).not_to_be_in_viewport()
        self.page.click("#menu")
        expect(self.page.locator("#sidebar")).to_be_in_viewport()


class WithKeys(unittest.TestCase):
    """A server that wants keys: the page asks for one, keeps it, and works with it."""

    def test_the_page_asks_for_a_key_and_keeps_it(self):
        server = Server(keys=True)
        try:
            with sync_playwright() as p:
                chromium = browser.launch(p)
                context = chromium.new_context()
                page = context.new_page()
                page.goto(server.url + "/")
                expect(page.locator("#key-dialog")).to_be_visible(timeout=15000)
                page.fill("#key-input", server.key)
                page.click('#key-dialog button[value="save"]')
                expect(page.locator("#model-picker")).to_have_value(MODEL, timeout=15000)
                page.fill("#prompt", "Hi")
                page.press("#prompt", "Enter")
                expect(page.locator("#messages article.assistant .stats")).to_be_visible(timeout=60000)
                page.reload()
                expect(page.locator("#model-picker")).to_have_value(MODEL, timeout=15000)
                expect(page.locator("#key-dialog")).to_be_hidden()
                chromium.close()
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
