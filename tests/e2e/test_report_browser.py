"""``report.html`` in a real headless browser: every plot loads and renders.

One real backtest (the ``finsentry backtest`` command) over a one-week slice
of the shared StockNet tweets *with* StockNet prices, so every plot kind is
written: per-ticker timelines with the price, market-wide sentiment, alerts by
topic and the event-study mean CAR with its band. The report is then opened
from disk (``file://``, as a person opens it) in Debian's Chromium, driven by
Playwright, and checked: title and headings, every ``<img>`` loaded and
decoded at the PNG's own pixel size, fully (no pixel left transparent, as a
truncated file leaves them), not blank and laid out on the page, the images are
exactly the PNG files the backtest wrote, the local links resolve, and the
page logged no console error, threw nothing and had no failed request.

The browser is the system Chromium (``apt-get install -y chromium``;
``make test`` and ``.ci/run`` install it when run as root), never Playwright's
own download. Without it the test skips and says so; with
``FINSENTRY_REQUIRE_BROWSER=1`` (set by ``.ci/run``) it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finsentry.cli import main
from finsentry.config import REPO_ROOT
from finsentry.demo import default_data_dir

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

STOCKNET = default_data_dir() / "stocknet"
INSTALL = "apt-get install -y chromium (as root; `make test` and `.ci/run` do it), or set FINSENTRY_CHROMIUM=/path"
# Without the background-networking flags Chromium opens connections to Google
# services on start; on a closed network they are refused in bursts.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # Lets the page read back its own plots' pixels (a canvas over file:// images is
                 # otherwise "tainted"); loading itself is unchanged.
                 "--allow-file-access-from-files"]
SLICE = ("2014-01-02", "2014-01-09")  # one week: ~600 tweets, scored by the real model in seconds


def _unavailable(reason: str) -> None:
    """Skip, or fail when the caller demanded a browser (CI)."""
    if os.environ.get("FINSENTRY_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(f"{reason}; FINSENTRY_REQUIRE_BROWSER is set, so this is an error", pytrace=False)
    pytest.skip(reason)


def _find_chromium() -> str:
    """Path of the system Chromium: ``$FINSENTRY_CHROMIUM`` when set, else ``chromium`` on PATH or /usr/bin/chromium."""
    forced = os.environ.get("FINSENTRY_CHROMIUM", "").strip()
    for candidate in [forced] if forced else [shutil.which("chromium"), "/usr/bin/chromium"]:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    where = f"FINSENTRY_CHROMIUM={forced} is not executable" if forced else "no Chromium found"
    _unavailable(f"{where}; the headless report test needs it: {INSTALL}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium's path, checked before the (slower) backtest runs; Playwright importable."""
    path = _find_chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"playwright is not importable ({exc}): pip install -e '.[dev]'")
    return path


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk (PNG spec, section 11.2.2)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a real StockNet backtest with prices (real model, fresh score cache)."""
    if not STOCKNET.is_dir():
        pytest.skip(f"StockNet data not found at {STOCKNET} (set FINSENTRY_DATA_DIR)")
    tmp = tmp_path_factory.mktemp("report")
    env = {"WINDOWS__SIZE_MINUTES": "1440", "WINDOWS__ALLOWED_LATENESS_MINUTES": "10",
           "DETECTOR__KIND": "threshold",  # a one-week slice is too short for baselines
           "DETECTOR__MIN_NEGATIVE": "2", "DETECTOR__MIN_NEG_SHARE": "0.25",
           "MODEL__PATH": str(REPO_ROOT / "models"), "MODEL__DEVICE": "cpu"}
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(f"FINSENTRY_{key}", value)
        code = main(["backtest", str(STOCKNET), "--prices", str(STOCKNET / "price" / "raw"),
                     "--from", SLICE[0], "--to", SLICE[1], "--out", str(out), "--cache-dir", str(tmp / "cache")])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    # Preconditions for "every plot kind": alerts, and an event study with more than one event (a band).
    assert summary["pipeline"]["alerts"] >= 2, summary["pipeline"]
    assert summary["event_study"]["events"] >= 2, summary["event_study"]
    return out


@pytest.fixture(scope="module")
def browser_page(chromium: str, report: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Open ``report.html`` in headless Chromium; yields what the page showed and logged."""
    from playwright.sync_api import sync_playwright

    events: dict[str, list[str]] = {"console_errors": [], "page_errors": [], "failed_requests": [],
                                    "bad_responses": [], "requests": []}
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and events["console_errors"].append(
                f"{m.text} @ {m.location}"))
            page.on("pageerror", lambda e: events["page_errors"].append(str(e)))
            page.on("requestfailed", lambda r: events["failed_requests"].append(f"{r.url}: {r.failure}"))
            page.on("request", lambda r: events["requests"].append(r.url))
            page.on("response", lambda r: r.status >= 400 and events["bad_responses"].append(f"{r.url}: {r.status}"))
            response = page.goto((report / "report.html").as_uri(), wait_until="load")
            # Wait until every image has settled (loaded or errored), then make each decode.
            page.wait_for_function("[...document.images].every(i => i.complete)")
            images = page.evaluate("""async () => Promise.all([...document.images].map(async i => {
                let decoded = true;
                try { await i.decode(); } catch (e) { decoded = false; }
                const r = i.getBoundingClientRect();
                // The pixels the browser decoded: matplotlib's PNGs are opaque (white figure), so any
                // transparent pixel is a part the decoder never reached (a truncated or corrupt file).
                const c = document.createElement('canvas');
                c.width = i.naturalWidth; c.height = i.naturalHeight;
                let transparent = -1, colours = 0;
                if (c.width && c.height) {
                    const ctx = c.getContext('2d');
                    ctx.drawImage(i, 0, 0);
                    const px = ctx.getImageData(0, 0, c.width, c.height).data;
                    const seen = new Set();
                    transparent = 0;
                    for (let k = 0; k < px.length; k += 4) {
                        if (px[k + 3] !== 255) transparent++;
                        if (seen.size < 64) seen.add((px[k] << 16) | (px[k + 1] << 8) | px[k + 2]);
                    }
                    colours = seen.size;
                }
                return {src: i.getAttribute('src'), url: i.currentSrc, alt: i.alt, complete: i.complete,
                        decoded, natural: [i.naturalWidth, i.naturalHeight], box: [r.width, r.height],
                        transparent, colours};
            }))""")
            yield {
                "response_ok": response is None or response.ok,
                "title": page.title(),
                "h1": page.locator("h1").all_inner_texts(),
                "h2": page.locator("h2").all_inner_texts(),
                "links": page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))"),
                "images": images,
                **events,
            }
        finally:
            context.close()


def test_report_has_title_headings_and_no_errors(browser_page: dict[str, Any]) -> None:
    assert browser_page["response_ok"]
    assert browser_page["title"] == "finsentry backtest"
    assert browser_page["h1"] == ["finsentry backtest: stocknet"]
    assert {"Event study", "Plots", "Largest alerts"} <= set(browser_page["h2"]), browser_page["h2"]
    assert browser_page["console_errors"] == []
    assert browser_page["page_errors"] == []
    assert browser_page["failed_requests"] == []
    assert browser_page["bad_responses"] == []


def test_every_plot_the_backtest_wrote_renders(browser_page: dict[str, Any], report: Path) -> None:
    images = browser_page["images"]
    written = {p.name for p in report.glob("*.png")}
    shown = [i["src"] for i in images]
    assert len(shown) == len(set(shown)), f"an image appears twice: {shown}"
    assert set(shown) == written, f"missing from the page: {written - set(shown)}; not on disk: {set(shown) - written}"
    # Every plot kind, with the price-dependent ones.
    assert {"market_sentiment.png", "alerts_by_topic.png", "mean_car.png"} <= written
    alerted = {json.loads(line)["key"] for line in (report / "alerts.jsonl").read_text().splitlines()}
    timelines = {n for n in written if n.startswith("timeline_")}
    assert timelines and {f"timeline_{k}.png" for k in alerted} & timelines, (alerted, timelines)
    for img in images:
        where = f"{img['src']} ({img['alt']})"
        assert img["complete"] and img["decoded"], f"{where} did not load/decode"
        assert list(img["natural"]) == list(_png_size(report / img["src"])), f"{where}: decoded at another size"
        assert img["transparent"] == 0, f"{where}: {img['transparent']} pixels never decoded (truncated/corrupt PNG)"
        assert img["colours"] >= 16, f"{where} is (nearly) blank: {img['colours']} colours"
        assert img["box"][0] > 100 and img["box"][1] > 100, f"{where} is not laid out: box {img['box']}"
        assert img["url"] == (report / img["src"]).as_uri(), f"{where} loaded from {img['url']}"
        assert img["alt"], f"{img['src']} has no alt text"
    # The browser fetched each plot from the report's folder.
    assert {(report / n).as_uri() for n in written} <= set(browser_page["requests"])


def test_local_links_resolve(browser_page: dict[str, Any], report: Path) -> None:
    links = browser_page["links"]
    assert {"alerts.csv", "alerts.jsonl", "summary.json"} <= set(links)
    missing = [href for href in links if "://" not in href and not (report / href).is_file()]
    assert missing == [], f"links to files that the backtest did not write: {missing}"
