/**
 * The dashboard page's HTML. The assets are TypeScript string modules so `tsc` carries them into
 * dist/ (and the container image) with the code: nothing to copy, nothing read from disk.
 * Everything the page loads comes from /admin/dashboard/* on the same origin (enforced by the CSP
 * sent with it).
 */
export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>meli-proxy · dashboard</title>
<link rel="icon" href="/admin/dashboard/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/admin/dashboard/style.css">
<script type="module" src="/admin/dashboard/app.js"></script>
</head>
<body>
<header class="topbar">
  <div class="brand"><span class="logo" aria-hidden="true"></span>meli-proxy <span class="brand-sub">dashboard</span></div>
  <div class="status" id="status" data-state="connecting"><span class="dot" aria-hidden="true"></span><span id="status-text">connecting…</span></div>
  <button id="sign-out" class="ghost" type="button" hidden>Sign out</button>
</header>

<main>
  <section id="login" class="login" hidden>
    <form id="login-form" method="post" autocomplete="off" novalidate>
      <h1>Sign in</h1>
      <p>This proxy's admin API needs its admin token: the value given to <code>meli-proxy serve</code>
        as <code>--admin-token</code> or <code>MELI_PROXY_ADMIN_TOKEN</code>. It is kept in this tab only.</p>
      <label for="token">Admin token</label>
      <input id="token" type="password" autocomplete="off" spellcheck="false" autocapitalize="off">
      <p id="login-error" class="error" role="alert" hidden></p>
      <button id="login-submit" type="submit">Sign in</button>
    </form>
  </section>

  <section id="dashboard" hidden>
    <div id="banner" class="banner" role="status" hidden></div>

    <div class="section-head">
      <h2>Live <small>this replica · last 60 seconds</small></h2>
      <span class="muted" id="live-updated"></span>
    </div>
    <div class="kpis">
      <div class="kpi"><span class="kpi-label">Requests/s</span><span class="kpi-value" id="live-rps" data-testid="live-rps">–</span><span class="kpi-note">last 10 s</span></div>
      <div class="kpi"><span class="kpi-label">Rate limited/s</span><span class="kpi-value warn" id="live-429" data-testid="live-429">–</span><span class="kpi-note">429 answers</span></div>
      <div class="kpi"><span class="kpi-label">Errors</span><span class="kpi-value bad" id="live-5xx" data-testid="live-5xx">–</span><span class="kpi-note">5xx share</span></div>
      <div class="kpi"><span class="kpi-label">Latency p50</span><span class="kpi-value" id="live-p50" data-testid="live-p50">–</span><span class="kpi-note">last 10 s</span></div>
      <div class="kpi"><span class="kpi-label">Latency p99</span><span class="kpi-value" id="live-p99" data-testid="live-p99">–</span><span class="kpi-note">last 10 s</span></div>
    </div>
    <div class="charts">
      <figure class="card chart">
        <figcaption>Requests per second <span class="legend"><i class="sw ok"></i>forwarded <i class="sw warn"></i>429 <i class="sw bad"></i>5xx</span></figcaption>
        <div id="chart-requests" class="chart-body"></div>
      </figure>
      <figure class="card chart">
        <figcaption>Latency, ms <span class="legend"><i class="sw p50"></i>p50 <i class="sw p99"></i>p99</span></figcaption>
        <div id="chart-latency" class="chart-body"></div>
      </figure>
    </div>
    <div class="tops">
      <div class="card"><h3>Top routes <small>60 s</small></h3><ol class="toplist" id="live-routes"></ol></div>
      <div class="card"><h3>Top client IPs <small>60 s</small></h3><ol class="toplist" id="live-ips"></ol></div>
      <div class="card"><h3>Top rules <small>60 s</small></h3><ol class="toplist" id="live-rules"></ol></div>
    </div>

    <div class="section-head">
      <h2>Usage <small>all replicas · <span id="period-label">last hour</span></small></h2>
      <div class="ranges" id="ranges" role="group" aria-label="Period">
        <button type="button" data-range="900000">15 m</button>
        <button type="button" data-range="3600000" aria-pressed="true">1 h</button>
        <button type="button" data-range="21600000">6 h</button>
        <button type="button" data-range="86400000">24 h</button>
        <button type="button" data-range="604800000">7 d</button>
      </div>
    </div>
    <div class="kpis">
      <div class="kpi"><span class="kpi-label">Requests</span><span class="kpi-value" id="total-requests" data-testid="total-requests">–</span></div>
      <div class="kpi"><span class="kpi-label">Rate limited (429)</span><span class="kpi-value warn" id="total-rate-limited" data-testid="total-rate-limited">–</span></div>
      <div class="kpi"><span class="kpi-label">Errors (5xx)</span><span class="kpi-value bad" id="total-errors" data-testid="total-errors">–</span></div>
      <div class="kpi"><span class="kpi-label">Traffic</span><span class="kpi-value" id="total-bytes" data-testid="total-bytes">–</span></div>
      <div class="kpi"><span class="kpi-label">Avg latency</span><span class="kpi-value" id="total-latency" data-testid="total-latency">–</span></div>
    </div>
    <div class="tables">
      <div class="card wide">
        <h3>Routes</h3>
        <table id="routes-table"><thead><tr><th>Route</th><th class="num">Requests</th><th class="bar-col">Share</th><th class="num">Bytes</th><th class="num">Avg latency</th></tr></thead><tbody id="routes-body"></tbody></table>
      </div>
      <div class="card">
        <h3>Status</h3>
        <table id="status-table"><thead><tr><th>Status</th><th class="num">Requests</th><th class="bar-col">Share</th></tr></thead><tbody id="status-body"></tbody></table>
      </div>
      <div class="card">
        <h3>Rate-limit rules <small>rejected or shadow-exceeded</small></h3>
        <table id="rules-table"><thead><tr><th>Rule</th><th class="num">Hits</th></tr></thead><tbody id="rules-body"></tbody></table>
      </div>
      <div class="card">
        <h3>Client IPs <small>estimated top</small></h3>
        <table id="ips-table"><thead><tr><th>IP</th><th class="num">Requests</th><th class="bar-col">Share</th></tr></thead><tbody id="ips-body"></tbody></table>
      </div>
      <div class="card wide">
        <h3>Accounts <small>requests sent with the account's injected token</small></h3>
        <table id="accounts-table"><thead><tr><th>Account</th><th class="num">Requests</th><th class="bar-col">Share</th><th class="num">Bytes</th></tr></thead><tbody id="accounts-body"></tbody></table>
      </div>
    </div>
  </section>
</main>
<footer class="foot muted">Served by this proxy's admin port; no external resources. Live figures are this replica's; usage covers every replica sharing the store.</footer>
</body>
</html>
`;

export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#2d3277"/><path d="M7 22l5-9 4 6 3-4 6 7z" fill="#ffe600"/></svg>
`;
