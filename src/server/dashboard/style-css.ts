/** The dashboard's stylesheet (system fonts only: nothing is fetched from elsewhere). */
export const STYLE_CSS = `:root {
  --bg: #f3f4f8;
  --card: #ffffff;
  --ink: #1d2235;
  --muted: #6b7189;
  --line: #e3e6ef;
  --brand: #2d3277;
  --accent: #ffe600;
  --ok: #3a7bd5;
  --warn: #f0a020;
  --bad: #d9434e;
  --p50: #3a7bd5;
  --p99: #8e44ad;
  --radius: 10px;
  color-scheme: light;
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body {
  background: var(--bg);
  color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-variant-numeric: tabular-nums;
}
code { white-space: nowrap; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.92em; background: #eef0f6; padding: 1px 4px; border-radius: 4px; }
small { color: var(--muted); font-weight: 400; font-size: 12px; margin-left: 6px; }
.muted { color: var(--muted); }
[hidden] { display: none !important; }

.topbar {
  display: flex; align-items: center; gap: 18px;
  padding: 12px 28px; background: var(--brand); color: #fff;
  box-shadow: 0 1px 0 rgba(0,0,0,.15);
}
.brand { font-weight: 700; font-size: 17px; letter-spacing: .2px; display: flex; align-items: center; gap: 10px; }
.brand-sub { font-weight: 400; opacity: .75; }
.logo { width: 22px; height: 22px; border-radius: 6px; background: var(--accent); display: inline-block; position: relative; }
.logo::after { content: ""; position: absolute; left: 5px; top: 6px; width: 12px; height: 8px; border: 2px solid var(--brand); border-top: 0; border-right: 0; transform: rotate(-45deg); }
.status { margin-left: auto; display: flex; align-items: center; gap: 8px; font-size: 13px; opacity: .95; }
.status .dot { width: 9px; height: 9px; border-radius: 50%; background: #aab; }
.status[data-state="live"] .dot { background: #3ddc84; box-shadow: 0 0 0 3px rgba(61,220,132,.25); }
.status[data-state="offline"] .dot { background: var(--bad); }
button {
  font: inherit; cursor: pointer; border-radius: 7px; border: 1px solid var(--brand);
  background: var(--brand); color: #fff; padding: 7px 14px;
}
button:disabled { opacity: .6; cursor: wait; }
button.ghost { background: transparent; border-color: rgba(255,255,255,.5); color: #fff; padding: 5px 12px; }
button.ghost:hover { background: rgba(255,255,255,.12); }

main { max-width: 1320px; margin: 0 auto; padding: 8px 28px 24px; }
.foot { max-width: 1320px; margin: 0 auto; padding: 0 28px 28px; font-size: 12px; }

.login { display: flex; justify-content: center; padding-top: 9vh; }
.login form { width: 420px; background: var(--card); border-radius: var(--radius); padding: 28px 30px; box-shadow: 0 6px 24px rgba(29,34,53,.08); border: 1px solid var(--line); }
.login h1 { margin: 0 0 8px; font-size: 22px; }
.login p { color: var(--muted); margin: 0 0 18px; }
.login label { display: block; font-weight: 600; margin-bottom: 6px; }
.login input { width: 100%; padding: 9px 11px; font: inherit; border: 1px solid #cfd3e0; border-radius: 7px; margin-bottom: 14px; }
.login input:focus { outline: 2px solid var(--ok); outline-offset: 1px; }
.login button { width: 100%; padding: 10px; font-weight: 600; }
.error { color: var(--bad); margin: -4px 0 14px; font-weight: 500; }

.banner { margin: 16px 0 0; padding: 10px 14px; border-radius: 8px; background: #fdecee; color: #8c1d26; border: 1px solid #f5c2c7; }

.section-head { display: flex; align-items: baseline; justify-content: space-between; margin: 22px 0 10px; gap: 12px; flex-wrap: wrap; }
.section-head h2 { margin: 0; font-size: 18px; }
.ranges { display: inline-flex; border: 1px solid #cfd3e0; border-radius: 8px; overflow: hidden; background: var(--card); }
.ranges button { background: transparent; color: var(--ink); border: 0; border-radius: 0; padding: 5px 12px; border-right: 1px solid var(--line); }
.ranges button:last-child { border-right: 0; }
.ranges button[aria-pressed="true"] { background: var(--brand); color: #fff; }

.kpis { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 12px; }
.kpi, .card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius); }
.kpi { padding: 12px 16px; display: flex; flex-direction: column; gap: 2px; }
.kpi-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .5px; font-weight: 600; }
.kpi-value { font-size: 26px; font-weight: 700; line-height: 1.2; }
.kpi-value.warn { color: #b86e00; }
.kpi-value.bad { color: var(--bad); }
.kpi-note { color: var(--muted); font-size: 12px; }

.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin-top: 12px; }
.chart { margin: 0; padding: 12px 14px 6px; }
.chart figcaption { font-weight: 600; display: flex; justify-content: space-between; align-items: center; }
.legend { font-weight: 400; color: var(--muted); font-size: 12px; display: inline-flex; align-items: center; gap: 4px; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-left: 8px; }
.sw.ok { background: var(--ok); } .sw.warn { background: var(--warn); } .sw.bad { background: var(--bad); }
.sw.p50 { background: var(--p50); } .sw.p99 { background: var(--p99); }
.chart-body { min-height: 120px; }
.chart-svg { width: 100%; height: auto; display: block; }
.chart-svg .grid { stroke: var(--line); stroke-width: 1; }
.chart-svg .tick { fill: var(--muted); font-size: 11px; }
.chart-svg .bar-ok { fill: var(--ok); }
.chart-svg .bar-warn { fill: var(--warn); }
.chart-svg .bar-bad { fill: var(--bad); }
.chart-svg .line-p50 { fill: none; stroke: var(--p50); stroke-width: 2; stroke-linejoin: round; }
.chart-svg .line-p99 { fill: none; stroke: var(--p99); stroke-width: 2; stroke-linejoin: round; }
.chart-svg .dot-p50 { fill: var(--p50); }
.chart-svg .dot-p99 { fill: var(--p99); }

.tops { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px; margin-top: 12px; }
.card { padding: 12px 16px; min-width: 0; }
.card h3 { margin: 0 0 8px; font-size: 14px; }
.toplist { list-style: none; margin: 0; padding: 0; }
.toplist li { display: grid; grid-template-columns: minmax(0, 1fr) auto; column-gap: 10px; padding: 4px 0; border-bottom: 1px solid #f0f1f6; }
.toplist li:last-child { border-bottom: 0; }
.toplist li .bar { grid-column: 1 / span 2; margin-top: 3px; }
.toplist .empty, tr.empty td { color: var(--muted); font-style: italic; }
.key { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.num { text-align: right; white-space: nowrap; }

.bar { display: block; height: 6px; border-radius: 3px; background: #eef0f6; overflow: hidden; }
.bar-fill { display: block; height: 100%; background: var(--ok); border-radius: 3px; }
.bar-fill.warn { background: var(--warn); }
.bar-fill.bad { background: var(--bad); }
.bar-fill.muted { background: #9aa1b8; }

.tables { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px; margin-top: 12px; }
.tables .wide { grid-column: 1 / -1; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; }
th { text-align: left; color: var(--muted); font-size: 11.5px; text-transform: uppercase; letter-spacing: .4px; font-weight: 600; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th.num { text-align: right; }
td { padding: 6px 8px; border-bottom: 1px solid #f0f1f6; }
tr:last-child td { border-bottom: 0; }
#routes-table th:first-child { width: 38%; }
.bar-col { width: 26%; }
.tables .card:not(.wide) .bar-col { width: 34%; }
#ips-table th:first-child { width: 44%; }
.bar-wrap { display: flex; align-items: center; gap: 8px; }
.bar-wrap .bar { flex: 1; }
.share { color: var(--muted); font-size: 12px; width: 48px; text-align: right; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e4effc; color: #1f4f8f; font-weight: 600; font-size: 12px; font-family: inherit; }
.chip.warn { background: #fff1d6; color: #8a5300; }
.chip.bad { background: #fde3e5; color: #9b1c26; }
.chip.muted { background: #eceef4; color: #4b5168; }
.chip.mode { margin-left: 6px; font-size: 11px; }

@media (max-width: 980px) {
  .kpis { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  .charts, .tops, .tables { grid-template-columns: 1fr; }
}
/* Phones: tables keep every number but drop the share bars (the percentage stays), headers may
   wrap instead of running into each other, and the page loses its wide margins. */
@media (max-width: 600px) {
  main, .foot { padding-left: 10px; padding-right: 10px; }
  .card { padding: 10px; }
  th, td { padding: 5px 3px; overflow-wrap: anywhere; }
  th, th.num { text-transform: none; letter-spacing: 0; font-size: 11px; white-space: normal; overflow-wrap: anywhere; vertical-align: bottom; }
  td.num { font-size: 12px; }
  .bar-col .bar { display: none; }
  .bar-wrap { justify-content: flex-end; }
  .bar-col, .tables .card:not(.wide) .bar-col { width: 15%; }
  #routes-table th:first-child { width: 28%; }
  #ips-table th:first-child { width: 50%; }
  .share { width: auto; }
}
`;
