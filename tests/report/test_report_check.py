"""The browser check finds what a reader would hit: console errors, broken images, content
wider than the screen, tiny table text."""

import pytest

from plmxai.report.check import check_report, find_chromium, problems

pytest.importorskip("playwright")
pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no Chromium (apt-get install chromium)")

GOOD_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_a_broken_page_is_caught(tmp_path):
    wide = "".join(f"<td>column {i} with a long text</td>" for i in range(60))
    page = tmp_path / "bad.html"
    page.write_text(f"""<!DOCTYPE html><html><body>
<img alt="fine" src="data:image/png;base64,{GOOD_PNG}">
<img alt="broken" src="data:image/png;base64,AAAA">
<script>console.error("boom")</script>
<table style="font-size:8px"><tr>{wide}</tr></table>
</body></html>""")
    found = check_report(page, tmp_path / "bad.png")
    assert [i["alt"] for i in found["broken_images"]] == ["broken"]
    assert found["console_errors"] == ["boom"]
    assert found["page_wider_than_screen"] and len(found["tables_off_screen"]) == 1
    assert len(found["tables_small_font"]) == 1 and (tmp_path / "bad.png").stat().st_size > 0
    assert len(problems(found)) == 5


def test_a_clean_page_passes(tmp_path):
    page = tmp_path / "ok.html"
    page.write_text(
        f'<!DOCTYPE html><html><body><img alt="x" src="data:image/png;base64,{GOOD_PNG}">'
        "<table><tr><td>1</td></tr></table></body></html>"
    )
    found = check_report(page)
    assert problems(found) == [] and found["n_images"] == 1 and found["n_tables"] == 1
