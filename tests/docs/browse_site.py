"""Look at the built documentation site as a reader would, in headless Chromium.

``python tests/docs/browse_site.py SITE_DIR OUT_DIR`` serves SITE_DIR on the loopback
interface, opens every page reachable from ``index.html`` at a desktop and a phone width, saves
a screenshot of each (the first screen, and the whole page) into OUT_DIR, and fails (exit 1)
listing every page that has a broken internal link or anchor, an image that did not load, or
content wider than the window (a page a phone user must scroll sideways).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): no
network port for the browser, no driver, no package beyond the standard library. It runs
Debian's ``chromium`` with a fresh profile and nothing that phones home. Run through
``nox -s docs_screenshots``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VIEWPORTS = {"desktop": (1280, 800, False), "phone": (390, 844, True)}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
# Everything the checks need, read from the rendered page in one evaluation.
INSPECT_PAGE = """
(() => {
  const width = window.innerWidth;
  const page = document.documentElement;
  const overflow = page.scrollWidth > width + 1;
  const culprits = [];
  if (overflow) {
    for (const el of document.body.querySelectorAll('*')) {
      const box = el.getBoundingClientRect();
      if (box.right > width + 1 && box.width > 0 && el.offsetParent !== null) {
        culprits.push(`${el.tagName.toLowerCase()}.${el.className} right=${Math.round(box.right)}`);
      }
    }
  }
  return {
    overflow, scrollWidth: page.scrollWidth, width, culprits: culprits.slice(-8),
    height: Math.ceil(page.scrollHeight),
    badImages: [...document.images]
      .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src')),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  };
})()
"""


class Chromium:
    """One headless Chromium, spoken to in DevTools protocol messages over two pipes."""

    def __init__(self, profile: Path) -> None:
        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        if executable is None:
            raise SystemExit("chromium is not installed (Debian: apt-get install chromium)")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def use_fds_3_and_4() -> None:
            # The protocol pipe is fd 3 (commands in) and fd 4 (answers out) in the browser;
            # copy both above 4 first so neither is overwritten by the other's dup2.
            reading = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            writing = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        self._process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=use_fds_3_and_4,  # noqa: PLW1509 - no threads run yet in this process
            pass_fds=(3, 4),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable", session=self.session)

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the protocol pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)  # type: ignore[no-any-return]

    def call(self, method: str, *, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read_message()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})  # type: ignore[no-any-return]
            self.events.append(answer)

    def wait_for(self, event: str) -> None:
        """Return once ``event`` has arrived (it may have arrived already)."""
        while True:
            for index, seen in enumerate(self.events):
                if seen.get("method") == event:
                    del self.events[: index + 1]
                    return
            self.events.append(self._read_message())

    def open(self, url: str, width: int, height: int, mobile: bool) -> dict[str, Any]:
        """Load ``url`` in a window of that size and return what `INSPECT_PAGE` finds."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=self.session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )
        self.events.clear()
        self.call("Page.navigate", session=self.session, url=url)
        self.wait_for("Page.loadEventFired")
        found = self.call(
            "Runtime.evaluate",
            session=self.session,
            expression=INSPECT_PAGE,
            returnByValue=True,
            awaitPromise=True,
        )
        return found["result"]["value"]  # type: ignore[no-any-return]

    def screenshot(self, path: Path, *, full_height: int | None = None) -> None:
        """Save the window, or the whole page of ``full_height`` pixels, as a PNG."""
        params: dict[str, Any] = {"format": "png"}
        if full_height is not None:
            metrics = self.call("Page.getLayoutMetrics", session=self.session)
            width = metrics["cssLayoutViewport"]["clientWidth"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": full_height, "scale": 1}
        data = self.call("Page.captureScreenshot", session=self.session, **params)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Ask the browser to quit, and make sure it did."""
        with contextlib.suppress(OSError, RuntimeError):
            self.call("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@contextlib.contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on 127.0.0.1 for the duration of the block; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Report:
    """What was wrong, per page."""

    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, page: str, problem: str) -> None:
        """Record one problem of one page."""
        self.problems.setdefault(page, []).append(problem)


def page_name(base: str, url: str) -> str:
    """The site-relative path of a page URL."""
    return urllib.parse.urldefrag(url)[0].removeprefix(base) or "index.html"


def browse(site: Path, out: Path) -> Report:
    """Visit every page, save its screenshots, and check it; return the problems."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    ids: dict[str, set[str]] = {}
    links: dict[str, set[str]] = {}
    external: set[str] = set()
    with (
        tempfile.TemporaryDirectory(prefix="persistkit-chromium-") as profile,
        serve(site) as base,
    ):
        browser = Chromium(Path(profile))
        try:
            queue = ["index.html"]
            while queue:
                page = queue.pop(0)
                if page in ids:
                    continue
                stem = page.removesuffix(".html").replace("/", "__")
                for label, (width, height, mobile) in VIEWPORTS.items():
                    found = browser.open(base + page, width, height, mobile)
                    browser.screenshot(out / f"{stem}.{label}.png")
                    browser.screenshot(
                        out / f"{stem}.{label}.full.png", full_height=found["height"]
                    )
                    if found["overflow"]:
                        report.add(
                            page,
                            f"{label}: {found['scrollWidth']} px wide in a {found['width']} px "
                            f"window; widest: {found['culprits']}",
                        )
                    for image in found["badImages"]:
                        report.add(page, f"{label}: image did not load: {image}")
                ids[page] = set(found["ids"])
                links[page] = set()
                for link in found["links"]:
                    if not link.startswith(base):
                        if link.startswith(("http://", "https://")):
                            external.add(link)
                        continue
                    links[page].add(link)
                    target = page_name(base, link)
                    if target.endswith(".html") and target not in ids and target not in queue:
                        queue.append(target)
        finally:
            browser.close()
    for page, targets in sorted(links.items()):
        for link in sorted(targets):
            target, fragment = urllib.parse.urldefrag(link)
            name = page_name(base, target)
            if not (site / urllib.parse.unquote(name)).is_file():
                report.add(page, f"broken link: {link.removeprefix(base)}")
            elif fragment and name in ids and urllib.parse.unquote(fragment) not in ids[name]:
                report.add(page, f"broken anchor: {link.removeprefix(base)}")
    print(f"{len(ids)} pages, {2 * len(VIEWPORTS) * len(ids)} screenshots in {out}")
    print(f"{len(external)} external links (not followed: no network here):")
    for link in sorted(external):
        print(f"  {link}")
    return report


def main(argv: list[str]) -> int:
    """Browse the site in ``argv[0]``, write screenshots to ``argv[1]``; 1 if a page is wrong."""
    site, out = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    report = browse(site, out)
    for page, problems in sorted(report.problems.items()):
        print(f"{page}:")
        for problem in problems:
            print(f"  {problem}")
    if report.problems:
        print(f"{len(report.problems)} pages with problems")
        return 1
    print("no broken links, missing images or horizontal overflow")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
