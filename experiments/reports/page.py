"""The HTML of a run's ``report.html``: pure (no MLflow): a run's facts and files in, one self-contained page out.

Generic over what the run holds: every top-level artifact folder (``latent/``, ``oip/``, ``dream/``, ``compare/``,
``sweep/`` and any a later analysis adds) becomes a section with its figures (PNG, embedded as ``data:`` URIs) and its
numbers (CSV as tables, JSON as text). Curves are inline SVG drawn from the metric histories, with the value under
the pointer. Every figure opens full size on click (zoom with the wheel or + / −, drag to pan); an OIP grid opens
beside its dataset examples (``oip/examples_<layer>.png``) when the run has them. Histograms and the latent scatter
also come as interactive plots when their arrays are given (:class:`Interactive`). No network access: no ``http``
reference in any ``src`` or ``href``, inline CSS and JS only.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

FIRST_FOLDERS = ("compare", "sweep", "oip", "latent", "dream")  # sections in this order, then the others by name
SKIPPED_FOLDERS = frozenset({"images", "checkpoints", "model"})  # UI thumbnails, weights, the MLflow model
MAX_TABLE_ROWS = 60  # a longer CSV shows its first rows and says how many there are
MAX_TEXT_CHARS = 4000  # a longer JSON or text shows its start
CURVE_GROUPS = (("loss", ("train/loss", "val/loss", "test/loss")), ("accuracy", ("train/acc", "val/acc", "test/acc")),
                ("learning rate", ("train/lr",)))
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class RunFacts:
    """What the report says about a run besides its files.

    :ivar histories: metric key → [(step, value)] in step order.
    :ivar metrics: metric key → latest value.
    """

    run_id: str
    name: str
    experiment: str
    status: str
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    histories: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Interactive:
    """Arrays for the interactive plots (JSON-ready lists).

    :ivar histograms: {"edges": (n_bins+1,), "counts": (z_dim, n_bins)} of ``latent/histograms.npz``.
    :ivar scatter: {"z": (n, z_dim)} a sample of latent vectors (``latent/z_sample.npy``).
    """

    histograms: Mapping[str, list] | None = None
    scatter: Mapping[str, list] | None = None


def data_uri(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png).decode()}"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


# --- curves (inline SVG) -----------------------------------------------------------------------------------------
def curve_svg(title: str, series: Mapping[str, Sequence[tuple[int, float]]], log: bool = False,
              width: int = 420, height: int = 240) -> str:
    """One SVG chart: a line per series over the steps (x = epoch), y fitted to the data (log10 for ``log``), each
    point with a hover title ``key: step → value``."""
    pts = {k: [(s, v) for s, v in vals if math.isfinite(v) and (v > 0 or not log)] for k, vals in series.items()}
    pts = {k: v for k, v in pts.items() if v}
    if not pts:
        return ""
    ys = [math.log10(v) if log else v for vals in pts.values() for _, v in vals]
    xs = [s for vals in pts.values() for s, _ in vals]
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - (0.05 if log else abs(y0) * 0.1 + 1e-9), y1 + (0.05 if log else abs(y1) * 0.1 + 1e-9)
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    left, right, top, bottom = 58, 10, 22, 30
    sx = lambda s: left + (s - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda v: top + (1 - ((math.log10(v) if log else v) - y0) / (y1 - y0)) * (height - top - bottom)  # noqa: E731
    out = [f'<svg class="curve" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{_esc(title)}"><text x="{left}" y="14" class="t">{_esc(title)}'
           f'{" (log scale)" if log else ""}</text>',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" class="frame"/>']
    for i in range(5):  # y ticks
        v = y0 + (y1 - y0) * i / 4
        y = top + (1 - i / 4) * (height - top - bottom)
        label = _fmt(10 ** v if log else v)
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" class="yt">{label}</text>')
    for s in sorted(set(xs)):
        out.append(f'<text x="{sx(s):.1f}" y="{height - 14}" class="xt">{s}</text>')
    out.append(f'<text x="{(left + width) / 2:.0f}" y="{height - 2}" class="xt">epoch</text>')
    for i, (key, vals) in enumerate(sorted(pts.items())):
        colour = COLOURS[i % len(COLOURS)]
        line = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in vals)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        for s, v in vals:
            out.append(f'<circle cx="{sx(s):.1f}" cy="{sy(v):.1f}" r="3.5" fill="{colour}">'
                       f'<title>{_esc(key)}: epoch {s} → {_fmt(v)}</title></circle>')
        out.append(f'<text x="{width - right - 4}" y="{top + 14 + 13 * i}" class="lg" fill="{colour}">'
                   f'{_esc(key)}</text>')
    out.append("</svg>")
    return "".join(out)


def curves_html(histories: Mapping[str, Sequence[tuple[int, float]]]) -> str:
    """The training curves (loss, accuracy, learning rate), then every other metric logged at more than one step."""
    charts, used = [], set()
    for title, keys in CURVE_GROUPS:
        series = {k: histories[k] for k in keys if k in histories}
        used.update(series)
        charts.append(curve_svg(title, series, log=title == "learning rate"))
    for key in sorted(k for k in histories if k not in used and not k.startswith("system/")):
        if len(histories[key]) > 1:
            charts.append(curve_svg(key, {key: histories[key]}))
    return "".join(c for c in charts if c)


# --- files -------------------------------------------------------------------------------------------------------
def table_html(text: str, caption: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return ""
    head, body = rows[0], rows[1:]
    shown = body[:MAX_TABLE_ROWS]
    cells = "".join("<tr>" + "".join(f"<td>{_esc(_num(c))}</td>" for c in r) + "</tr>" for r in shown)
    more = f"<p class='note'>first {len(shown)} of {len(body)} rows</p>" if len(body) > len(shown) else ""
    return (f"<figure class='table'><figcaption>{_esc(caption)}</figcaption><div class='scroll'><table><thead><tr>"
            + "".join(f"<th>{_esc(h)}</th>" for h in head) + f"</tr></thead><tbody>{cells}</tbody></table></div>"
            f"{more}</figure>")


def _num(cell: str) -> str:
    try:
        value = float(cell)
    except ValueError:
        return cell
    return cell if cell.isdigit() else _fmt(value)


def _folder_order(folder: str) -> tuple[int, str]:
    return (FIRST_FOLDERS.index(folder), "") if folder in FIRST_FOLDERS else (len(FIRST_FOLDERS), folder)


def examples_for(path: str, files: Mapping[str, bytes]) -> str | None:
    """The dataset examples shown beside an OIP grid: ``oip/examples_<layer>.png`` for ``oip/<layer>_<init>.png``."""
    match = re.fullmatch(r"oip/(conv\w*?)_[^/]+\.png", path)
    if not match or path.startswith("oip/examples_"):
        return None
    examples = f"oip/examples_{match.group(1)}.png"
    return examples if examples in files else None


def figure_html(path: str, files: Mapping[str, bytes]) -> str:
    examples = examples_for(path, files)
    extra = f' data-examples="{data_uri(files[examples])}" data-examples-name="{_esc(examples)}"' if examples else ""
    return (f"<figure class='fig'><img src='{data_uri(files[path])}' alt='{_esc(path)}' loading='lazy' "
            f"class='zoomable'{extra}><figcaption>{_esc(path)}"
            f"{' · click: full size beside its dataset examples' if examples else ''}</figcaption></figure>")


def folder_html(folder: str, files: Mapping[str, bytes], interactive: str = "") -> str:
    paths = sorted(p for p in files if p.startswith(folder + "/"))
    parts = [interactive]
    for path in paths:
        data, name = files[path], path.rsplit("/", 1)[-1]
        if name.endswith(".png"):
            parts.append(figure_html(path, files))
        elif name.endswith(".csv"):
            parts.append(table_html(data.decode(errors="replace"), path))
        elif name.endswith((".json", ".yaml", ".txt")):
            text = data.decode(errors="replace")
            cut = "\n…" if len(text) > MAX_TEXT_CHARS else ""
            parts.append(f"<details><summary>{_esc(path)}</summary><pre>{_esc(text[:MAX_TEXT_CHARS])}{cut}</pre>"
                         "</details>")
    others = [p.removeprefix(folder + "/") for p in paths if not p.endswith((".png", ".csv", ".json", ".yaml", ".txt"))]
    if others:
        parts.append(f"<p class='note'>also in {folder}/ (arrays, not shown): {_esc(', '.join(others))}</p>")
    return f"<section id='{_esc(folder)}'><h2>{_esc(folder)}/</h2><div class='grid'>{''.join(parts)}</div></section>"


def interactive_html(data: Interactive) -> str:
    """Canvas plots fed by embedded JSON: a histogram per latent component (choose it; hover shows the bin and its
    count; wheel zooms, drag pans) and the latent scatter (choose two components; hover shows the point)."""
    parts = []
    if data.histograms:
        parts.append("<figure class='widget'><figcaption>latent histograms (interactive): component "
                     "<select id='hsel'></select> · hover: bin and count · wheel: zoom · drag: pan · double-click: "
                     "reset</figcaption><canvas id='hist' width='640' height='300'></canvas><div class='tip' "
                     "id='htip'></div></figure>")
    if data.scatter:
        parts.append("<figure class='widget'><figcaption>latent scatter (interactive): x <select id='sx'></select> "
                     "y <select id='sy'></select> · hover: the vector · wheel: zoom · drag: pan · double-click: "
                     "reset</figcaption><canvas id='scat' width='520' height='520'></canvas><div class='tip' "
                     "id='stip'></div></figure>")
    payload = json.dumps({"hist": data.histograms, "scatter": data.scatter}, separators=(",", ":"))
    payload = payload.replace("</", "<\\/")  # never closes the script element early
    return "".join(parts) + f"<script type='application/json' id='ld-data'>{payload}</script>"


def _kv_table(items: Mapping[str, object]) -> str:
    return "<table class='kv'>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>"
                                         for k, v in sorted(items.items())) + "</table>"


def health_html(tags: Mapping[str, str]) -> str:
    """The health verdict (tag ``health`` and any ``health.*`` tags), or a line saying there is none."""
    verdict = tags.get("health")
    details = {k: v for k, v in tags.items() if k.startswith("health.")}
    if verdict is None and not details:
        return "<p class='note'>no health verdict (tag <code>health</code>) in this run</p>"
    level = (verdict or "").split(":", 1)[0].strip().lower()
    cls = "ok" if level in ("ok", "healthy", "good") else "warn" if level in ("warn", "warning") else "bad"
    return f"<p class='health {cls}'>{_esc(verdict or '')}</p>" + (_kv_table(details) if details else "")


def build_report(facts: RunFacts, files: Mapping[str, bytes], interactive: Interactive | None = None) -> str:
    """The whole page: title, health verdict, curves, then one section per artifact folder with every figure and
    table, the final metrics, and the run's config (``config.yaml``) and params/tags.

    :param files: artifact path → bytes, for the files the report shows (the caller leaves out what it must).
    """
    folders = sorted({p.split("/", 1)[0] for p in files if "/" in p} - SKIPPED_FOLDERS, key=_folder_order)
    latent = interactive_html(interactive) if interactive and (interactive.histograms or interactive.scatter) else ""
    sections = [folder_html(f, files, latent if f == "latent" else "") for f in folders]
    if latent and "latent" not in folders:
        sections.append(f"<section id='latent'><h2>latent</h2><div class='grid'>{latent}</div></section>")
    final = {k: _fmt(v) for k, v in facts.metrics.items() if not k.startswith("system/")}
    config = files.get("config.yaml", b"").decode(errors="replace")
    nav = " · ".join(f"<a href='#{_esc(f)}'>{_esc(f)}</a>" for f in ["curves", *folders, "config"])
    body = (f"<header><h1>{_esc(facts.name)}</h1><p>run <code>{_esc(facts.run_id)}</code> · experiment "
            f"{_esc(facts.experiment)} · {_esc(facts.tags.get('kind', ''))} · {_esc(facts.status)}</p>"
            f"<nav>{nav}</nav></header>"
            f"<section id='health'><h2>health</h2>{health_html(facts.tags)}</section>"
            f"<section id='curves'><h2>curves</h2><div class='grid'>{curves_html(facts.histories)}</div></section>"
            + "".join(sections)
            + f"<section id='metrics'><h2>final metrics</h2>{_kv_table(final)}</section>"
            f"<section id='config'><h2>config</h2><div class='grid'><div>{_kv_table(facts.params)}</div>"
            f"<details open><summary>config.yaml</summary><pre>{_esc(config)}</pre></details></div>"
            f"<details><summary>tags</summary>{_kv_table(facts.tags)}</details></section>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(facts.name)} — latentdream "
            f"report</title><style>{CSS}</style></head><body>{body}<div id='lightbox' hidden><div class='bar'>"
            "<button id='zin'>+</button><button id='zout'>−</button><button id='zclose'>close</button>"
            "<span id='lbname'></span></div><div class='panes'><div class='pane'><img id='lbimg' alt='full size'>"
            "</div><div class='pane' id='lbex' hidden><img id='lbeximg' alt='dataset examples'></div></div></div>"
            f"<script>{JS}</script></body></html>")


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 16px 40px;color:#222;background:#fff}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:6px 0;z-index:2}
h1{font-size:20px;margin:4px 0}h2{font-size:16px;margin:18px 0 6px;border-bottom:1px solid #eee}
nav a{color:#1f5fa8;text-decoration:none}code{background:#f3f3f3;padding:0 3px}
.grid{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;border:1px solid #e4e4e4;border-radius:4px;padding:6px;max-width:100%}
figure.fig img{max-width:min(900px,100%);height:auto;cursor:zoom-in;display:block}
figcaption{font-size:12px;color:#555;margin:2px 0}
.scroll{max-height:360px;overflow:auto}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #e4e4e4;padding:2px 6px;text-align:right}th{background:#f6f6f6}
table.kv th{text-align:left}table.kv td{text-align:left}
.note{color:#777;font-size:12px}pre{font-size:12px;max-height:420px;overflow:auto;background:#f8f8f8;padding:6px}
svg.curve text{font-size:10px;fill:#444}svg.curve .t{font-size:12px;font-weight:600}
svg.curve .yt{text-anchor:end}svg.curve .xt{text-anchor:middle}svg.curve .lg{text-anchor:end;font-size:11px}
svg.curve .frame{fill:none;stroke:#ccc}
.health{font-weight:600;padding:6px 10px;border-radius:4px;display:inline-block}
.ok{background:#e6f4ea;color:#1e6b34}.warn{background:#fff4e0;color:#8a5300}.bad{background:#fde8e8;color:#a12020}
#lightbox{position:fixed;inset:0;background:rgba(20,20,20,.92);z-index:9;display:flex;flex-direction:column}
#lightbox[hidden]{display:none}#lightbox .bar{color:#eee;padding:6px;display:flex;gap:8px;align-items:center}
#lightbox .panes{flex:1;display:flex;gap:8px;overflow:hidden}
#lightbox .pane{flex:1;overflow:hidden;position:relative;cursor:grab}
#lightbox .pane img{position:absolute;left:0;top:0;transform-origin:0 0;image-rendering:pixelated}
canvas{border:1px solid #ddd;cursor:crosshair}.tip{font-size:12px;color:#333;min-height:1.4em}
"""

JS = r"""
(function(){
const lb=document.getElementById('lightbox'),img=document.getElementById('lbimg'),ex=document.getElementById('lbex'),
  eximg=document.getElementById('lbeximg'),nm=document.getElementById('lbname');
let views=[];
function fit(pane,im){const r=pane.getBoundingClientRect(),s=Math.min(r.width/(im.naturalWidth||1),r.height/(im.naturalHeight||1));
  return {im:im,s:s,x:0,y:0};}
function apply(v){v.im.style.transform='translate('+v.x+'px,'+v.y+'px) scale('+v.s+')';}
function open(el){img.src=el.src;nm.textContent=el.alt;const e=el.dataset.examples;ex.hidden=!e;if(e){eximg.src=e;}
  lb.hidden=false;const go=function(){views=[fit(img.parentNode,img)];if(e)views.push(fit(ex,eximg));views.forEach(apply);};
  views=[];if(img.complete&&img.naturalWidth)requestAnimationFrame(go);else img.onload=go;}
document.querySelectorAll('img.zoomable').forEach(function(el){el.addEventListener('click',function(){open(el);});});
function zoom(f){views.forEach(function(v){v.s*=f;apply(v);});}
document.getElementById('zin').onclick=function(){zoom(1.25);};document.getElementById('zout').onclick=function(){zoom(0.8);};
document.getElementById('zclose').onclick=function(){lb.hidden=true;};
document.addEventListener('keydown',function(e){if(e.key==='Escape')lb.hidden=true;if(lb.hidden)return;
  if(e.key==='+')zoom(1.25);if(e.key==='-')zoom(0.8);});
lb.addEventListener('wheel',function(e){e.preventDefault();zoom(e.deltaY<0?1.15:0.87);},{passive:false});
let drag=null;lb.addEventListener('mousedown',function(e){drag=[e.clientX,e.clientY];});
window.addEventListener('mouseup',function(){drag=null;});
window.addEventListener('mousemove',function(e){if(!drag)return;const dx=e.clientX-drag[0],dy=e.clientY-drag[1];
  drag=[e.clientX,e.clientY];views.forEach(function(v){v.x+=dx;v.y+=dy;apply(v);});});
const node=document.getElementById('ld-data');if(!node)return;const D=JSON.parse(node.textContent);
function axes(c){return {c:c,ctx:c.getContext('2d'),x0:0,x1:1,y0:0,y1:1,pad:40};}
function tx(a,x){return a.pad+(x-a.x0)/(a.x1-a.x0)*(a.c.width-a.pad-8);}
function ty(a,y){return a.c.height-24-(y-a.y0)/(a.y1-a.y0)*(a.c.height-32);}
function ix(a,px){return a.x0+(px-a.pad)/(a.c.width-a.pad-8)*(a.x1-a.x0);}
function frame(a){const g=a.ctx;g.clearRect(0,0,a.c.width,a.c.height);g.strokeStyle='#ccc';
  g.strokeRect(a.pad,8,a.c.width-a.pad-8,a.c.height-32);g.fillStyle='#444';g.font='10px sans-serif';
  for(let i=0;i<=4;i++){const x=a.x0+(a.x1-a.x0)*i/4,y=a.y0+(a.y1-a.y0)*i/4;g.fillText(x.toPrecision(3),tx(a,x)-10,a.c.height-10);
    g.fillText(y.toPrecision(3),2,ty(a,y)+3);}}
function interact(a,draw,reset,hover){a.c.addEventListener('wheel',function(e){e.preventDefault();const f=e.deltaY<0?0.8:1.25,
  r=a.c.getBoundingClientRect(),cx=ix(a,e.clientX-r.left);a.x0=cx+(a.x0-cx)*f;a.x1=cx+(a.x1-cx)*f;
  if(a.zy){const cy=a.y0+(a.c.height-24-(e.clientY-r.top))/(a.c.height-32)*(a.y1-a.y0);a.y0=cy+(a.y0-cy)*f;a.y1=cy+(a.y1-cy)*f;}draw();},{passive:false});
  let d=null;a.c.addEventListener('mousedown',function(e){d=[e.clientX,e.clientY];});window.addEventListener('mouseup',function(){d=null;});
  a.c.addEventListener('mousemove',function(e){const r=a.c.getBoundingClientRect();if(d){const dx=(e.clientX-d[0])/(a.c.width-a.pad-8)*(a.x1-a.x0),
    dy=(e.clientY-d[1])/(a.c.height-32)*(a.y1-a.y0);a.x0-=dx;a.x1-=dx;if(a.zy){a.y0+=dy;a.y1+=dy;}d=[e.clientX,e.clientY];draw();}
    hover(e.clientX-r.left,e.clientY-r.top);});a.c.addEventListener('dblclick',function(){reset();draw();});}
if(D.hist){const H=D.hist,sel=document.getElementById('hsel'),a=axes(document.getElementById('hist')),tip=document.getElementById('htip');
  H.counts.forEach(function(_,i){const o=document.createElement('option');o.value=i;o.textContent=i;sel.appendChild(o);});
  const E=H.edges;function reset(){const c=H.counts[sel.value];let lo=c.findIndex(function(v){return v>0;}),hi=c.length-1;
    while(hi>0&&c[hi]===0)hi--;if(lo<0){lo=0;hi=c.length-1;}const m=Math.max(1,Math.round((hi-lo+1)*0.1));
    lo=Math.max(0,lo-m);hi=Math.min(c.length-1,hi+m);a.x0=E[lo];a.x1=E[hi+1];a.y0=0;a.y1=Math.max.apply(null,c)*1.05||1;}
  function draw(){frame(a);const g=a.ctx,c=H.counts[sel.value];g.fillStyle='#1f77b4';
    for(let i=0;i<c.length;i++){const x0=tx(a,E[i]),x1=tx(a,E[i+1]);if(x1<a.pad||x0>a.c.width)continue;g.fillRect(x0,ty(a,c[i]),Math.max(1,x1-x0-0.5),ty(a,0)-ty(a,c[i]));}}
  sel.onchange=function(){reset();draw();};reset();draw();
  interact(a,draw,reset,function(px){const x=ix(a,px),c=H.counts[sel.value];let i=0;while(i<c.length-1&&E[i+1]<x)i++;
    tip.textContent='component '+sel.value+': bin ['+E[i].toPrecision(3)+', '+E[i+1].toPrecision(3)+') count '+c[i];});}
if(D.scatter){const Z=D.scatter.z,n=Z[0].length,a=axes(document.getElementById('scat')),tip=document.getElementById('stip');a.zy=true;
  const sx=document.getElementById('sx'),sy=document.getElementById('sy');
  for(let i=0;i<n;i++){[sx,sy].forEach(function(s){const o=document.createElement('option');o.value=i;o.textContent=i;s.appendChild(o);});}
  sy.value=Math.min(1,n-1);
  function reset(){const X=Z.map(function(z){return z[sx.value];}),Y=Z.map(function(z){return z[sy.value];});
    a.x0=Math.min.apply(null,X);a.x1=Math.max.apply(null,X);a.y0=Math.min.apply(null,Y);a.y1=Math.max.apply(null,Y);
    if(a.x1<=a.x0)a.x1=a.x0+1;if(a.y1<=a.y0)a.y1=a.y0+1;}
  function draw(){frame(a);const g=a.ctx;g.fillStyle='rgba(31,119,180,0.5)';
    Z.forEach(function(z){g.fillRect(tx(a,z[sx.value])-1.5,ty(a,z[sy.value])-1.5,3,3);});}
  sx.onchange=sy.onchange=function(){reset();draw();};reset();draw();
  interact(a,draw,reset,function(px,py){let best=-1,bd=64;Z.forEach(function(z,i){const dx=tx(a,z[sx.value])-px,dy=ty(a,z[sy.value])-py,d2=dx*dx+dy*dy;
    if(d2<bd){bd=d2;best=i;}});tip.textContent=best<0?'':'vector '+best+': ('+Z[best][sx.value].toPrecision(3)+', '+Z[best][sy.value].toPrecision(3)+')';});}
})();
"""
