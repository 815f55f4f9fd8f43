"""The pages' one stylesheet, inlined in each: system fonts (nothing to fetch), figures that
shrink to the screen, wide tables that scroll in their own box, a single column on a phone, and
no navigation or split figures on paper. Status colours always come with their word."""

CSS = """
:root{--fg:#1d232a;--muted:#5b6672;--line:#d8dde3;--bg:#fff;--band:#f4f6f8;
--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}
header,nav,main,footer{max-width:1100px;margin:0 auto;padding:0 16px}
header h1{font-size:1.5em;margin:20px 0 4px;overflow-wrap:anywhere}
nav ul{list-style:none;padding:0;margin:8px 0 16px;display:flex;flex-wrap:wrap;gap:4px 14px}
nav a{color:#0550ae;text-decoration:none}
h2{font-size:1.2em;border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:28px}
h3{font-size:1.05em;margin:18px 0 6px}
section,figure,.scroll table{break-inside:avoid}
img{max-width:100%;height:auto;display:block}
figure{margin:12px 0}
figcaption{color:var(--muted);font-size:.9em}
.curves{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:flex-start}
.curves figure{margin:4px 0}
.nowrap{white-space:nowrap}
.reason{display:inline-block;min-width:16em}
.error{color:var(--bad);overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:var(--band)}
.num{text-align:right;font-variant-numeric:tabular-nums}
.main{font-weight:700}
pre{background:var(--band);padding:10px;overflow-x:auto;font-size:.85em;white-space:pre}
code{font-size:.9em}
.note{color:var(--muted);font-style:italic}
.status{font-weight:600}
.completed,.ok{color:var(--ok)}
.stopped,.pruned,.warn,.running{color:var(--warn)}
.failed,.bad{color:var(--bad)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;overflow-wrap:anywhere}
footer{color:var(--muted);font-size:.85em;border-top:1px solid var(--line);margin-top:32px;
padding-top:8px;padding-bottom:24px;overflow-wrap:anywhere}
@media (max-width:600px){body{font-size:14px}dl.facts{grid-template-columns:1fr}
dl.facts dd{margin-bottom:6px}}
@media print{nav{display:none}a{color:inherit;text-decoration:none}body{font-size:11pt}}
"""
