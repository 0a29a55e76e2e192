"""Report tables that stay readable at real-model size: the first rows in view, the whole table
one click away (a `<details>` in the same file), sortable by any column and filterable by text.

The behaviour is one small inline script, written once per page (`TABLE_HEAD`, in the page's
head): it listens on `document`, so tables added anywhere in the body need nothing of their own.
No external resources; pandas, numpy and html only."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

TABLE_CSS = r"""
.tbl{max-width:100%;overflow-x:auto}
.tbl table{display:block;overflow-x:auto;max-width:100%}
table.tbl-all{max-height:30em;overflow:auto}
table.tbl-all thead th{position:sticky;top:0;z-index:1;cursor:pointer;user-select:none;background:#eef2f6;
box-shadow:inset 0 -1px #bbb}
table.tbl-all th[aria-sort=ascending]::after{content:" \25B2"}
table.tbl-all th[aria-sort=descending]::after{content:" \25BC"}
table caption{text-align:left;font-weight:600;padding:.2em 0}
.tbl-tools{margin:.3em 0}.tbl-filter{font:inherit;padding:.15em .4em;width:18em;max-width:100%}
.tbl-count{color:#555;font-size:.9em;margin-left:.6em}
"""

# sort: numbers (the shown text, "inf" included) by value, then text (natural order), empty cells
# last in either direction; stable. filter: every whitespace-separated term, case-insensitive.
TABLE_SCRIPT = r"""(function(){
"use strict";
function key(c){var s=c?c.textContent.trim():"";if(!s)return[2,0];
var n=Number(s.replace(/^([-+]?)inf$/i,"$1Infinity"));return isNaN(n)?[1,s.toLowerCase()]:[0,n];}
function sortBy(th){
var t=th.closest("table"),i=th.cellIndex,asc=th.getAttribute("aria-sort")!=="ascending";
[].forEach.call(t.tHead.rows[0].cells,function(h){h.removeAttribute("aria-sort");});
th.setAttribute("aria-sort",asc?"ascending":"descending");
var b=t.tBodies[0],r=[].map.call(b.rows,function(x,j){return{x:x,k:key(x.cells[i]),j:j};});
r.sort(function(p,q){var a=p.k,c=q.k,d=a[0]-c[0];
if(d){if(a[0]===2||c[0]===2)return d;}
else if(a[0]===1)d=a[1].localeCompare(c[1],undefined,{numeric:true});
else if(a[0]===0)d=a[1]<c[1]?-1:a[1]>c[1]?1:0;
return (asc?d:-d)||p.j-q.j;});
var f=document.createDocumentFragment();r.forEach(function(o){f.appendChild(o.x);});b.appendChild(f);}
function filter(inp){var box=inp.closest("details.tbl-more"),t=box&&box.querySelector("table.tbl-all");
if(!t)return;var w=inp.value.toLowerCase().split(/\s+/).filter(Boolean),rows=t.tBodies[0].rows,n=0;
for(var k=0;k<rows.length;k++){var r=rows[k];
if(r._t===undefined)r._t=[].map.call(r.cells,function(c){return c.textContent;}).join("\t").toLowerCase();
var ok=w.every(function(x){return r._t.indexOf(x)>=0;});r.hidden=!ok;if(ok)n++;}
var c=box.querySelector(".tbl-count");if(c)c.textContent=n+" of "+rows.length+" rows shown";}
function th(e){return e.target.closest?e.target.closest("table.tbl-all thead th"):null;}
document.addEventListener("click",function(e){var h=th(e);if(h)sortBy(h);});
document.addEventListener("keydown",function(e){var h=th(e);
if(h&&(e.key==="Enter"||e.key===" ")){e.preventDefault();sortBy(h);}});
document.addEventListener("input",function(e){
if(e.target.matches&&e.target.matches("input.tbl-filter"))filter(e.target);});
})();"""

# what a page needs once, in its head, for every table `html_table` writes
TABLE_HEAD = f"<style>{TABLE_CSS}</style><script>{TABLE_SCRIPT}</script>"


def _cell(v, float_fmt: str) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else float_fmt.format(v)
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    return str(v)


def _rows(df: pd.DataFrame, float_fmt: str, row_class) -> list[str]:
    cols = [[html.escape(_cell(v, float_fmt)) for v in df.iloc[:, j].tolist()] for j in range(df.shape[1])]
    classes = [row_class(r) for _, r in df.iterrows()] if row_class else [""] * len(df)
    out = []
    for i, cls in enumerate(classes):
        attr = f' class="{html.escape(str(cls))}"' if cls else ""
        out.append(f"<tr{attr}>" + "".join(f"<td>{c[i]}</td>" for c in cols) + "</tr>")
    return out


def _wrap(
    head: list[str], rows: list[str], cls: str = "", caption: str | None = None, th_attr: str = ""
) -> str:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    ths = "".join(f"<th{th_attr}>{h}</th>" for h in head)
    return f'<div class="tbl"><table{cls}>{cap}<thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def html_table(
    df: pd.DataFrame, *, top: int = 15, float_fmt: str = "{:.3g}", row_class=None, caption: str | None = None
) -> str:
    """The table as HTML. Up to `top` rows: a plain table. More: its first `top` rows (in the order
    given: callers sort), then a `<details>` holding all rows, sortable (click a header) and
    filterable (text box), scrolling inside its own box. `row_class(row)` gives a CSS class per
    row (the row as a pandas Series); cell text is escaped. Needs `TABLE_HEAD` once in the page."""
    head = [html.escape(str(c)) for c in df.columns]
    rows = _rows(df, float_fmt, row_class)
    top = max(int(top), 0)
    if len(rows) <= top:
        return _wrap(head, rows, caption=caption)
    n = len(rows)
    shown = _wrap(head, rows[:top], caption=caption) if top else ""
    return (
        f'{shown}<details class="tbl-more"><summary>All {n} rows (sortable, filterable)</summary>'
        '<div class="tbl-tools"><input type="search" class="tbl-filter" placeholder="Filter rows (all words)" '
        f'aria-label="Filter rows"><span class="tbl-count">{n} of {n} rows shown</span> '
        '<span class="note">Click a column header to sort.</span></div>'
        + _wrap(head, rows, cls=' class="tbl-all"', th_attr=' tabindex="0" title="sort"')
        + "</details>"
    )
