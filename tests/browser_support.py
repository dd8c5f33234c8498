"""Helpers for the Chromium tests: the browser itself, the app under uvicorn on 127.0.0.1, a static "foreign site"
on another port, a page that records every request it makes (to prove none leaves the machine), a wait for a
state the page reaches in its own time, and the axe-core audit."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The marks of every module that drives Chromium.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium absent : installez le paquet chromium"),
]
AXE = Path(__file__).resolve().parent.parent / "web" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA, and axe's best practices (landmarks, headings, unique names…).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
WCAG = f"axe.run(document, {{runOnly: {{type: 'tag', values: {AXE_TAGS!r}}}}})"
# How long a test waits for a state the page reaches in its own time (a pan, a late layout, a loaded layer):
# generous, for a loaded CI machine; a page that never gets there still fails, only later.
SETTLE_MS = 20_000


@contextmanager
def launch_browser() -> Iterator:
    """A headless Chromium (the system one) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn in a background thread; yields its base URL."""
    sock = _free_socket()
    # The HTTP implementation `geo-service serve` uses (settings.http_implementation: QGIS needs h11's header case).
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           http=app.state.settings.http_implementation))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn n'a pas démarré")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A plain http.server on 127.0.0.1 (another port: another origin) serving ``folder``."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Visit:
    """A page in a fresh browser context, with every request URL it (and its frames) made and its JS errors."""

    def __init__(self, browser, width: int, height: int, **context_options):
        self.context = browser.new_context(viewport={"width": width, "height": height}, locale="fr-FR",
                                           service_workers="block", **context_options)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.console.append(message.text))

    def goto(self, url: str) -> Visit:
        self.page.goto(url, wait_until="networkidle")
        return self

    def wait_for_console(self, fragment: str, timeout: float = SETTLE_MS) -> bool:
        """Waits until the page (or one of its frames) has logged a console message containing ``fragment``, for at
        most ``timeout`` ms; tells whether it has."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        if any(fragment in message for message in self.console):
            return True
        try:
            self.page.wait_for_event("console", predicate=lambda message: fragment in message.text, timeout=timeout)
        except PlaywrightTimeout:
            return False
        return True

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests
                if not u.startswith(("data:", "about:")) and urlsplit(u).hostname != "127.0.0.1"]

    def close(self) -> None:
        self.context.close()


def open_visit(browser, visits: list[Visit], width: int = 1280, height: int = 800, **context_options) -> Visit:
    """A new ``Visit``, added to ``visits`` (which the caller checks and closes)."""
    visit = Visit(browser, width, height, **context_options)
    visits.append(visit)
    return visit


def wait_until(page, predicate: str, arg: object = None, timeout: float = SETTLE_MS) -> bool:
    """Waits until the JavaScript ``predicate`` (a function of ``arg``) is truthy in ``page``, for at most
    ``timeout`` ms; tells whether it became so. The caller then asserts on what it reads, with a clear message."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(predicate, arg=arg, timeout=timeout)
    except PlaywrightTimeout:
        return False
    return True


def axe_violations(page) -> list:
    """axe-core (injected from node_modules, not served) audits ``page`` against WCAG 2.1 A and AA rules and axe's
    best practices."""
    # Evaluated, not added as a <script>: the page's CSP refuses inline scripts without its nonce.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(WCAG)
    return [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:5]) for v in result["violations"]]
