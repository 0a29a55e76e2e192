"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, driven by
Playwright) loads the file and reports what a reader would hit: console errors, images that do
not load, and content wider than a laptop's screen.

    python -m plmxai.report.check results/demo/report.html --screenshot report.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

# per element: where it ends horizontally and how it scrolls; tables scroll inside their own
# box (overflow-x: auto), so a wide table is readable as long as its box fits the page
MEASURE = """() => {
  const vw = document.documentElement.clientWidth;
  const images = [...document.images].map((im, i) => ({index: i, alt: im.alt,
      loaded: im.complete && im.naturalWidth > 0}));
  const tables = [...document.querySelectorAll('table')].map((t, i) => {
      const r = t.getBoundingClientRect();
      const style = getComputedStyle(t);
      return {index: i, right: r.right, scrolls: ['auto', 'scroll'].includes(style.overflowX),
              font_px: parseFloat(getComputedStyle(t.querySelector('td, th') || t).fontSize)};
  });
  return {viewport: vw, page_width: document.documentElement.scrollWidth, images, tables};
}"""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_report(
    html_path, screenshot=None, width: int = 1366, height: int = 768, min_font_px: float = 11.0
) -> dict:
    """Open the report and return the problems found (empty lists when there are none)."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError(
            f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}); apt-get install chromium"
        )
    url = Path(html_path).resolve().as_uri()
    console, page_errors, failed = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url[:200]))
            page.goto(url, wait_until="load")
            m = page.evaluate(MEASURE)
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    viewport = m["viewport"]
    return {
        "console_errors": console + page_errors,
        "failed_requests": failed,
        "broken_images": [i for i in m["images"] if not i["loaded"]],
        "page_wider_than_screen": m["page_width"] > viewport,
        "tables_off_screen": [t for t in m["tables"] if t["right"] > viewport + 1 and not t["scrolls"]],
        "tables_small_font": [t for t in m["tables"] if t["font_px"] < min_font_px],
        "n_images": len(m["images"]),
        "n_tables": len(m["tables"]),
    }


def problems(found: dict) -> list[str]:
    out = [f"console error: {e}" for e in found["console_errors"]]
    out += [f"failed request: {u}" for u in found["failed_requests"]]
    out += [f"image {i['index']} ({i['alt']!r}) did not load" for i in found["broken_images"]]
    if found["page_wider_than_screen"]:
        out.append("the page is wider than the screen")
    out += [f"table {t['index']} runs off the screen" for t in found["tables_off_screen"]]
    out += [f"table {t['index']} font {t['font_px']:.1f} px" for t in found["tables_small_font"]]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("--screenshot")
    ap.add_argument("--width", type=int, default=1366)
    args = ap.parse_args(argv)
    found = check_report(args.report, args.screenshot, args.width)
    print(json.dumps({k: v for k, v in found.items()}, indent=1))
    bad = problems(found)
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
