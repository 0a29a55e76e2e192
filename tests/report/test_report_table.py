"""Report tables at real-model size: the top rows in view, the whole table one click away
(sortable, filterable, scrolling in its own box), cell text escaped."""

import re

import numpy as np
import pandas as pd
import pytest

from plmxai.report.table import TABLE_HEAD, html_table


def _parts(out: str) -> tuple[str, str]:
    """(what is in view, what the <details> holds)."""
    shown, _, more = out.partition('<details class="tbl-more">')
    return shown, more


def _body_rows(fragment: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*?)</tbody>", fragment, re.S).group(1)
    return [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_a_small_table_is_plain():
    df = pd.DataFrame(
        {"name": ["a", "b<i>", "c"], "x": [1.23456, np.nan, 3.0], "n": [1, 2, 3], "ok": [True, False, True]}
    )
    out = html_table(df, row_class=lambda r: "sig" if r["ok"] else "", caption="Top & co")
    assert "<details" not in out and "tbl-all" not in out and "tbl-filter" not in out
    assert out.startswith('<div class="tbl"><table>') and "<caption>Top &amp; co</caption>" in out
    assert _body_rows(out) == [
        ["a", "1.23", "1", "True"],
        ["b&lt;i&gt;", "", "2", "False"],
        ["c", "3", "3", "True"],
    ]
    assert out.count('<tr class="sig">') == 2 and "<th>name</th>" in out
    assert html_table(df, top=3) == html_table(df)  # exactly `top` rows: still plain


def test_a_large_table_shows_its_top_rows_and_holds_them_all():
    n = 2000
    df = pd.DataFrame(
        {
            "property": [f'<p{i % 7}>&"x"' for i in range(n)],
            "layer": np.arange(n) % 6,
            "ratio": np.linspace(5, 0, n),
            "significant": np.arange(n) < 40,
        }
    )
    out = html_table(df, top=15, row_class=lambda r: "sig" if r["significant"] else "")
    shown, more = _parts(out)
    assert more, "a long table must have its <details>"
    top = _body_rows(shown)
    assert len(top) == 15 and [r[1] for r in top] == [str(i % 6) for i in range(15)]
    assert top[0][2] == "5" and shown.count('<tr class="sig">') == 15
    assert "<summary>All 2000 rows (sortable, filterable)</summary>" in more
    rows = _body_rows(more)
    assert len(rows) == n and rows[-1][2] == "0" and more.count('<tr class="sig">') == 40
    assert 'class="tbl-filter"' in more and 'class="tbl-all"' in more and "2000 of 2000 rows shown" in more
    # cell text escaped: no raw markup from the data anywhere
    assert "<p0>" not in out and rows[0][0] == "&lt;p0&gt;&amp;&quot;x&quot;"
    # no script per table: the page carries it once (TABLE_HEAD)
    assert "<script" not in out and "<script>" in TABLE_HEAD and "<style>" in TABLE_HEAD


def test_the_report_table_delegates():
    from plmxai.report.build import _table

    df = pd.DataFrame({"epoch": range(30), "loss": np.linspace(1, 0, 30)})
    shown, more = _parts(_table(df, max_rows=10))
    assert len(_body_rows(shown)) == 10 and len(_body_rows(more)) == 30
    shown, more = _parts(_table(df))  # default: 15 in view
    assert len(_body_rows(shown)) == 15 and len(_body_rows(more)) == 30
    assert "<details" not in _table(df.head(5))


def test_attention_top_heads_per_property():
    from plmxai.report.attention import top_heads

    rng = np.random.default_rng(0)
    rows = []
    for prop, kind in [("Helix", "annotation"), ("contact", "contact"), ("A", "amino_acid")]:
        for layer in range(6):
            for head in range(20):
                tested = head % 5 != 0
                q = rng.uniform() if tested else np.nan
                rows.append(
                    {
                        "layer": layer,
                        "head": head,
                        "property": prop,
                        "kind": kind,
                        "n_high_pairs": 100,
                        "proportion": 0.1,
                        "background": 0.05,
                        "ratio": rng.uniform(0.5, 3),
                        "p_permutation": q,
                        "q_permutation": q,
                        "q_z": q,
                        "q_composition": np.nan,
                        "significant": bool(q < 0.05) if tested else False,
                        "tested": tested,
                        "null_mean": 0.05,
                    }
                )
    t = pd.DataFrame(rows)
    best, full = top_heads(t, ["contact", "Helix"])
    assert list(best["property"]) == ["contact"] * 3 + ["Helix"] * 3 and best["tested"].all()
    for prop, g in best.groupby("property"):
        tested_q = t[(t["property"] == prop) & t["tested"]]["q_permutation"]
        assert list(g["q_permutation"]) == sorted(tested_q)[:3]
    assert len(full) == len(t) and full.head(6).equals(best) and "null_mean" not in full
    assert set(map(tuple, full[["layer", "head", "property"]].to_numpy())) == set(
        map(tuple, t[["layer", "head", "property"]].to_numpy())
    )


# ---- in a browser ---------------------------------------------------------------------------


def _page(tmp_path) -> tuple:
    from plmxai.report.build import CSS

    rng = np.random.default_rng(1)
    n = 300
    values = rng.permutation(n)  # 0..299, shuffled: 10 must sort after 9, 100 after 99
    df = pd.DataFrame(
        {
            "property": [["alpha", "beta", "gamma"][i % 3] for i in range(n)],
            "n": values,
            "x": np.where(np.arange(n) % 50 == 0, np.nan, rng.normal(size=n)),
        }
    )
    for k in range(25):  # a wide table: must scroll in its box, not widen the page
        df[f"a rather long column name {k}"] = "some longish cell text"
    page = tmp_path / "tables.html"
    page.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<style>{CSS}</style>{TABLE_HEAD}</head><body><h1>Tables</h1>"
        + html_table(df, top=10)
        + html_table(df.head(4))
        + "</body></html>"
    )
    return page, df


def _chromium() -> str:
    pytest.importorskip("playwright")
    from plmxai.report.check import find_chromium

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    return chromium


@pytest.fixture
def browser():
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def test_in_a_browser_headers_sort_and_the_filter_hides(browser, tmp_path):
    page_file, df = _page(tmp_path)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.resolve().as_uri(), wait_until="load")

    def column(i):
        return page.eval_on_selector_all(
            "table.tbl-all tbody tr:not([hidden])", f"rs => rs.map(r => r.cells[{i}].textContent)"
        )

    assert page.locator("table.tbl-all").is_hidden()  # closed until asked for
    page.click("details.tbl-more summary")
    assert page.locator("table.tbl-all").is_visible()
    assert len(column(1)) == len(df)
    header = page.locator("table.tbl-all thead th", has_text="n").first
    header.click()
    assert [int(v) for v in column(1)] == list(range(len(df)))  # numeric: 10 after 9, not after 1
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [int(v) for v in column(1)] == list(range(len(df)))[::-1]
    assert header.get_attribute("aria-sort") == "descending"
    x = page.locator("table.tbl-all thead th", has_text="x").first
    x.click()
    xs = column(2)
    nums = [float(v) for v in xs if v]
    assert nums == sorted(nums) and xs[-len(df) // 50 :] == [""] * (len(df) // 50)  # empty cells last
    x.click()
    xs = column(2)
    nums = [float(v) for v in xs if v]
    assert nums == sorted(nums, reverse=True) and xs[-1] == ""

    page.fill("details.tbl-more input.tbl-filter", "ALPHA")
    shown = column(0)
    assert shown and set(shown) == {"alpha"} and len(shown) == (df["property"] == "alpha").sum()
    assert page.text_content(".tbl-count") == f"{len(shown)} of {len(df)} rows shown"
    page.fill("details.tbl-more input.tbl-filter", "gamma 29")  # every word must match
    assert {(p, "29" in v) for p, v in zip(column(0), column(1))} == {("gamma", True)}
    page.fill("details.tbl-more input.tbl-filter", "")
    assert len(column(0)) == len(df)

    # the whole table scrolls inside its own box; nothing is wider than the screen
    box = page.evaluate("""() => { const t = document.querySelector('table.tbl-all');
        return {client: t.clientHeight, scroll: t.scrollHeight, wide: t.scrollWidth > t.clientWidth,
                page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth}; }""")
    assert box["scroll"] > box["client"] and box["wide"] and box["page"] <= box["view"] <= 1366
    assert errors == []
    page.close()


def test_in_a_browser_the_check_passes(tmp_path):
    _chromium()
    from plmxai.report.check import check_report, problems

    page_file, _ = _page(tmp_path)
    found = check_report(page_file)
    assert problems(found) == [] and found["n_tables"] == 3
