"""A page as a reader sees it: opened in headless Chromium, measured, and judged.

`look(url)` loads a page in Debian's Chromium, driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`, so no port, no websocket library and no network), waits for
MathJax to finish, saves a screenshot if asked, and returns what the page shows
(`Look`): the visible text blocks with where they sit, every math element and whether
MathJax typeset it, and every image's natural and displayed size. `defects(look)` turns
that into the reader-facing defects the book must not have, one sentence each:

- a raw Markdown table (a `| --- |` row) in the text;
- math that MathJax did not typeset (a math element without MathJax's output, or TeX
  source such as `\\(`, `$$` or `\\mathrm` in the text);
- a Python traceback;
- a download or network message (`Downloading data from`, `[Errno -2]`, a URL of a
  model store, ...);
- a temporary path named after another chapter (`/tmp/ch05_...` on chapter 6's page);
- a figure displayed so much smaller than it was drawn that its text falls below
  MIN_FIGURE_TEXT of the body text (see `figure_scale`).

Code cells' sources and the prose's code blocks are not judged: they show code, and
code may build a table or hold a URL.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
WINDOW = (1280, 1000)  # a laptop's browser window; the book's content column is ~700 px in it
TILE = 10_000  # px of page per screenshot file

# Figures: the book draws them with matplotlib at `figure.dpi` 100 and text of at least
# FIGURE_FONT_PT points (chapters' rcParams; tests/test_book_text.py checks chapters 4-8),
# i.e. FIGURE_FONT_PT * dpi / 72 pixels of the PNG, the PNG's dpi read from its pHYs chunk.
# Displayed at a width w of its natural width W, that text is (w / W) times as large; the
# check fails a figure whose text so scaled is below MIN_FIGURE_TEXT of the body text's
# size. Figures without a pHYs chunk are taken as drawn at 100 dpi.
FIGURE_FONT_PT = 14
MIN_FIGURE_TEXT = 1.0  # "at least as large as the body text once scaled"
CHAPTER_NUMBER = re.compile(r"(?:^|/)(\d\d)_[\w-]+\.html$")


@dataclass
class Look:
    """What one page shows, as measured in the browser."""

    url: str
    text: list = field(default_factory=list)  # {"text", "where"}: visible text nodes
    math: list = field(default_factory=list)  # {"source", "typeset"}: math elements
    images: list = field(default_factory=list)  # {"src", "natural", "shown", "dpi"}
    body_font_px: float = 16.0
    mathjax: bool = False  # MathJax loaded and finished
    console: list = field(default_factory=list)


# Runs in the page: collects what Look holds. Text inside code cells' sources, prose code
# blocks, scripts, styles and MathJax's own output is left out.
_COLLECT = r"""
(() => {
  const skip = (el) => el.closest(
    'script, style, noscript, code, mjx-container, .cell_input, ' +
    'div[class*="highlight-"]:not(.cell_output div), .headerlink, .toctree-wrapper');
  const root = document.querySelector('main, article, [role=main]') || document.body;
  const text = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || !node.textContent.trim() || skip(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;   // hidden
    text.push({text: node.textContent,
               where: el.closest('.cell_output') ? 'output' : 'prose'});
  }
  const math = [...root.querySelectorAll('.math, span.math, div.math')]
    .filter((el) => !el.parentElement.closest('.math'))
    .map((el) => ({source: el.textContent.slice(0, 200),
                   typeset: !!el.querySelector('mjx-container') ||
                            el.tagName.toLowerCase() === 'mjx-container'}));
  // Figures: the images of cell outputs and of the prose's figures (not logos, icons).
  const images = [...root.querySelectorAll('.cell_output img, figure img, img.figure')]
    .map((img) => ({
    src: img.getAttribute('src') || '',
    natural: img.naturalWidth, natural_height: img.naturalHeight,
    shown: img.getBoundingClientRect().width,
    loaded: img.complete && img.naturalWidth > 0,
  }));
  const para = root.querySelector('p') || document.body;
  return JSON.stringify({text, math, images,
                         body_font_px: parseFloat(getComputedStyle(para).fontSize)});
})()
"""

_WAIT_FOR_MATHJAX = r"""
(async () => {
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return false;
  await MathJax.startup.promise;
  if (MathJax.typesetPromise) await MathJax.typesetPromise();
  return true;
})()
"""


class _Browser:
    """Chromium with the DevTools protocol on fds 3 (commands in) and 4 (replies out)."""

    def __init__(self, timeout=120):
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory()
        self.log = tempfile.TemporaryFile()
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4; bash puts the pipes there.
        wire = f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write}'
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                wire,
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile.name}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,  # a file, not a pipe: a full pipe would stall Chromium
            pass_fds=(to_browser_read, from_browser_write),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events = []

    def close(self):
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass  # it may have gone already; closing the pipe below ends it too
        try:
            os.close(self._to_browser)
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()  # this process only: the Chromium this object started
            self.process.wait()
        os.close(self._from_browser)
        self.log.close()
        self.profile.cleanup()

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    self.log.seek(0)
                    error = self.log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"Chromium closed the DevTools pipe: {error}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, session=None, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method, deadline):
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))


def _png_dpi(data: bytes) -> float | None:
    """Horizontal dots per inch from a PNG's pHYs chunk, or None."""
    at = data.find(b"pHYs")
    if at < 0 or data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    x_per_unit = int.from_bytes(data[at + 4 : at + 8], "big")
    unit = data[at + 12]
    return x_per_unit * 0.0254 if unit == 1 and x_per_unit else None


def _image_bytes(src: str, page: Path | None) -> bytes | None:
    if src.startswith("data:image/png;base64,"):
        return base64.b64decode(src.split(",", 1)[1])
    if page is not None and not re.match(r"^[a-z]+:", src):
        path = (page.parent / src).resolve()
        if path.is_file():
            return path.read_bytes()
    return None


def look(page, screenshot: Path | None = None, settle_ms: int = 500) -> Look:
    """Open `page` (a path or a URL) in headless Chromium and measure what it shows.

    screenshot: where to save PNGs of the whole page: this file for its first TILE px, then
    NAME-2.png, NAME-3.png, ... for the rest.
    """
    path = Path(page) if not re.match(r"^[a-z]+://", str(page)) else None
    url = path.resolve().as_uri() if path else str(page)
    browser = _Browser()
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        browser.send("Page.enable", session)
        browser.send("Runtime.enable", session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=WINDOW[0],
            height=WINDOW[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        browser.send("Page.navigate", session, url=url)
        deadline = time.monotonic() + browser.timeout
        browser.wait_for("Page.loadEventFired", deadline)
        mathjax = browser.send(
            "Runtime.evaluate",
            session,
            expression=_WAIT_FOR_MATHJAX,
            awaitPromise=True,
            returnByValue=True,
        )["result"].get("value", False)
        time.sleep(settle_ms / 1000)  # late layout: widgets, fonts
        raw = browser.send("Runtime.evaluate", session, expression=_COLLECT, returnByValue=True)[
            "result"
        ]["value"]
        found = json.loads(raw)
        if screenshot is not None:
            # The whole page, in tiles of TILE px (Chromium draws at most ~16,000 px at once):
            # NAME.png from the top, then NAME-2.png, NAME-3.png, ... further down.
            height = int(browser.send("Page.getLayoutMetrics", session)["cssContentSize"]["height"])
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            for old in screenshot.parent.glob(f"{screenshot.stem}-*{screenshot.suffix}"):
                old.unlink()
            for index, top in enumerate(range(0, max(height, 1), TILE)):
                clip = {
                    "x": 0,
                    "y": top,
                    "width": WINDOW[0],
                    "height": min(TILE, height - top),
                    "scale": 1,
                }
                shot = browser.send(
                    "Page.captureScreenshot",
                    session,
                    format="png",
                    captureBeyondViewport=True,
                    clip=clip,
                )
                name = (
                    screenshot
                    if index == 0
                    else screenshot.with_name(f"{screenshot.stem}-{index + 1}{screenshot.suffix}")
                )
                name.write_bytes(base64.b64decode(shot["data"]))
        console = [
            e["params"].get("exceptionDetails", {}).get("text", "")
            for e in browser.events
            if e.get("method") == "Runtime.exceptionThrown"
        ]
    finally:
        browser.close()
    # The PNGs' dpi, from the files themselves (the page gives only sizes).
    for image in found["images"]:
        data = _image_bytes(image["src"], path)
        image["dpi"] = _png_dpi(data) if data else None
    return Look(
        url=url,
        text=found["text"],
        math=found["math"],
        images=found["images"],
        body_font_px=found["body_font_px"],
        mathjax=bool(mathjax),
        console=console,
    )


# ---- the judging ----------------------------------------------------------------------------

# A table's rule row, as typed (`|---|---:|`) or as Sphinx's smart quotes turn it (`|—|—:|`).
_DASHES = r"(?:-{3,}|[\u2013\u2014][-\u2013\u2014]*)"
_TABLE_RULE = re.compile(rf"^\s*\|?\s*:?{_DASHES}:?\s*(\|\s*:?{_DASHES}:?\s*)+\|?\s*$")
_TEX_SOURCE = re.compile(
    r"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$"
    r"|\\(?:frac|mathrm|mathbb|mathcal|operatorname|log|theta|sigma|gamma|psi|alpha|beta"
    r"|sqrt|sum|left|right|tfrac|text|cdot|nabla|partial)\b"
)
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\", line \d+", re.M)
_NETWORK = re.compile(
    r"Downloading data from|\[Errno -?\d+\]|Name or service not known|"
    r"Temporary failure in name resolution|urlopen error|URLError|HTTP Error \d{3}|"
    r"Max retries exceeded|Connection refused|storage\.googleapis\.com|/root/\.keras|"
    r"could not download|tfhub\.dev|hub\.resolve\(",
    re.I,
)
_CHAPTER_PATH = re.compile(r"(?:/tmp/ch|gan-book-|\bch)(\d\d)[_-]")


def figure_scale(image: dict) -> float:
    """How large the figure's smallest text is on screen, as a share of the body text."""
    dpi = image.get("dpi") or 100.0
    text_px = FIGURE_FONT_PT * dpi / 72
    return text_px * image["shown"] / max(image["natural"], 1)


def defects(seen: Look, chapter: int | None = None) -> list[str]:
    """Reader-facing defects on a page, one sentence each (empty: none found).

    chapter: the page's chapter number; temporary paths named after another chapter are
    then defects (taken from the page's file name, NN_name.html, when not given).
    """
    found = []
    if chapter is None:
        match = CHAPTER_NUMBER.search(seen.url)
        chapter = int(match.group(1)) if match else None

    def quote(text):
        return " ".join(text.split())[:160]

    for block in seen.text:
        text = block["text"]
        rules = [line for line in text.splitlines() if _TABLE_RULE.match(line)]
        if rules:
            found.append(f"raw Markdown table (row {rules[0].strip()!r}): {quote(text)}")
        if _TEX_SOURCE.search(text):
            found.append(f"math shown as TeX source: {quote(text)}")
        if _TRACEBACK.search(text):
            found.append(f"Python traceback: {quote(text)}")
        if _NETWORK.search(text):
            found.append(f"download or network message: {quote(text)}")
        if chapter is not None and block["where"] == "output":
            other = {int(n) for n in _CHAPTER_PATH.findall(text)} - {chapter}
            if other:
                found.append(f"a path named after chapter {min(other)}: {quote(text)}")
    untypeset = [m["source"] for m in seen.math if not m["typeset"]]
    if untypeset:
        why = "" if seen.mathjax else " (MathJax did not load)"
        found.append(f"{len(untypeset)} math element(s) not typeset{why}: {untypeset[0]!r}")
    for image in seen.images:
        if not image.get("loaded", True):
            found.append(f"image not loaded: {image['src'][:80]}")
            continue
        if image["natural"] < 200 or image["shown"] == 0:  # icons; hidden (a closed tab)
            continue
        share = figure_scale(image) / seen.body_font_px
        if share < MIN_FIGURE_TEXT:
            found.append(
                f"figure too small to read: drawn {image['natural']} px wide at "
                f"{image.get('dpi') or 100:.0f} dpi, shown {image['shown']:.0f} px, so its "
                f"{FIGURE_FONT_PT}-pt text is {share:.0%} of the body text "
                f"(at least {MIN_FIGURE_TEXT:.0%}): {image['src'][:60]}"
            )
    return found
