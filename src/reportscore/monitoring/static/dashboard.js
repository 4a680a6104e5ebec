// The reportscore dashboard: reads dashboard/data every 2 s and draws it with uPlot (vendored, no CDN).
// window.__dashboard exposes the charts and timings, for people debugging the page and for the browser test.
(() => {
  "use strict";

  const REFRESH_MS = 2000;
  const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2"];

  const board = (window.__dashboard = {
    charts: {},
    data: null,
    updates: 0,
    failures: 0,
    lastError: null,
    firstDataAt: null,
    /** Non-null points per series, by chart: {throughput: [n, n, n], ...}. */
    seriesLengths() {
      const out = {};
      for (const [name, chart] of Object.entries(this.charts)) {
        out[name] = chart.data.slice(1).map((s) => s.filter((v) => v !== null && Number.isFinite(v)).length);
      }
      return out;
    },
    /** Largest value per series, by chart (0 when a series is all empty). */
    seriesMax() {
      const out = {};
      for (const [name, chart] of Object.entries(this.charts)) {
        out[name] = chart.data.slice(1).map((s) => s.reduce((m, v) => (v !== null && v > m ? v : m), 0));
      }
      return out;
    },
  });

  const $ = (id) => document.getElementById(id);

  function num(value, digits = 1) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en");
    return value.toFixed(digits);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 120) return `${seconds.toFixed(1)} s`;
    if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  const zeroBased = (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1];

  // Axis labels with as many decimals as the tick step needs (0.25 → "0.25", 2 → "2", 5000 → "5,000").
  function ticks(_u, splits, _axis, _space, incr) {
    const decimals = Math.min((String(incr || 1).split(".")[1] || "").length, 3);
    return splits.map((v) => (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en") : v.toFixed(decimals)));
  }

  // Without a cursor on the chart, the legend shows the latest values.
  function showLatest(chart) {
    const n = chart.data[0].length;
    if (n) chart.setLegend({ idx: n - 1 });
  }

  function size(el) {
    return { width: Math.max(el.clientWidth, 280), height: 230 };
  }

  function line(label, color, scale = "y") {
    return { label, stroke: color, width: 2, scale, points: { show: false }, value: (_u, v) => num(v, 2) };
  }

  // Time-series charts: [key, series, extra axis for scale "r" (label) or null, pick(data) -> arrays]
  const TIME_CHARTS = [
    [
      "throughput",
      [line("requests/s", COLORS[0]), line("jobs finished/s", COLORS[1]), line("reports scored/s", COLORS[3], "r")],
      "reports/s",
      (d) => [d.series.requests_per_s, d.series.jobs_per_s, d.series.reports_per_s],
    ],
    [
      "job_latency",
      [line("p50", COLORS[1]), line("p95", COLORS[4]), line("p99", COLORS[2])],
      null,
      (d) => [d.series.job_latency_ms.p50, d.series.job_latency_ms.p95, d.series.job_latency_ms.p99],
    ],
    [
      "http_latency",
      [line("p50", COLORS[1]), line("p95", COLORS[4]), line("p99", COLORS[2])],
      null,
      (d) => [d.series.http_latency_ms.p50, d.series.http_latency_ms.p95, d.series.http_latency_ms.p99],
    ],
    [
      "queue",
      [line("pending", COLORS[0]), line("started", COLORS[1]), line("oldest pending (s)", COLORS[2], "r")],
      "seconds",
      (d) => [d.series.pending, d.series.started, d.series.oldest_pending_age_s],
    ],
    [
      "errors",
      [line("HTTP 4xx/s", COLORS[4]), line("HTTP 5xx/s", COLORS[2]), line("job failures/s", COLORS[3])],
      null,
      (d) => [d.series.http_4xx_per_s, d.series.http_5xx_per_s, d.series.job_failures_per_s],
    ],
  ];

  function timeChart(key, series, rightLabel, data) {
    const el = $(`c-${key}`);
    const axes = [{}, { scale: "y", size: 60, values: ticks }];
    const scales = { x: { time: true }, y: { range: zeroBased } };
    if (rightLabel) {
      scales.r = { range: zeroBased };
      axes.push({ scale: "r", side: 1, size: 60, label: rightLabel, grid: { show: false }, values: ticks });
    }
    const opts = { ...size(el), scales, axes, series: [{}, ...series], legend: { live: true } };
    return new uPlot(opts, data, el);
  }

  function scoreData(d) {
    const upper = d.scores.bucket_upper;
    const width = upper.length > 1 ? upper[1] - upper[0] : upper[0];
    const xs = upper.map((u) => Math.round((u - width / 2) * 1000) / 1000);
    const kinds = Object.keys(d.scores.by_abuse_type).sort();
    return [kinds, [xs, ...kinds.map((k) => d.scores.by_abuse_type[k].share.map((s) => Math.round(s * 1000) / 10))]];
  }

  function scoreChart(kinds, data) {
    const el = $("c-scores");
    const series = kinds.map((kind, i) => ({
      label: kind,
      stroke: COLORS[i % COLORS.length],
      fill: `${COLORS[i % COLORS.length]}99`,
      width: 1,
      paths: uPlot.paths.bars({ size: [0.9 / kinds.length, 80], align: i === 0 ? -1 : 1 }),
      points: { show: false },
      value: (_u, v) => (v === null ? "–" : `${v.toFixed(1)} %`),
    }));
    const opts = {
      ...size(el),
      scales: { x: { time: false, range: [0, 1] }, y: { range: zeroBased } },
      axes: [{ values: ticks }, { size: 50, values: (u, splits, ...rest) => ticks(u, splits, ...rest).map((v) => `${v}%`) }],
      series: [{ label: "score", value: (_u, v) => (v === null ? "–" : v.toFixed(3)) }, ...series],
      legend: { live: true },
    };
    const chart = new uPlot(opts, data, el);
    chart.kinds = kinds.join(",");
    return chart;
  }

  function render(d) {
    const t = d.series.t;
    for (const [key, series, rightLabel, pick] of TIME_CHARTS) {
      const data = [t, ...pick(d)];
      if (board.charts[key]) board.charts[key].setData(data);
      else board.charts[key] = timeChart(key, series, rightLabel, data);
      showLatest(board.charts[key]);
    }
    const [kinds, scores] = scoreData(d);
    $("score-counts").textContent = kinds.map((k) => `${k} ${num(d.scores.by_abuse_type[k].count, 0)}`).join(" · ");
    const existing = board.charts.scores;
    if (existing && existing.kinds === kinds.join(",")) existing.setData(scores);
    else {
      if (existing) existing.destroy();
      board.charts.scores = scoreChart(kinds, scores);
    }

    $("mode").textContent = d.mode;
    $("model").textContent = `${d.model.name} ${d.model.version} (${d.model.format})`;
    $("model").title = `sha256 ${d.model.sha256} · loaded ${d.model.loaded_at}`;
    $("t-requests").textContent = num(d.now.requests_per_s);
    $("t-jobs").textContent = num(d.now.jobs_per_s);
    $("t-reports").textContent = num(d.now.reports_per_s, 0);
    const lat = d.now.job_latency_ms;
    $("t-latency").textContent = lat.p50 === null ? "–" : `${num(lat.p50)} / ${num(lat.p99)} ms`;
    $("t-queue").textContent = `${num(d.queue.pending, 0)} / ${num(d.queue.started, 0)}`;
    $("t-oldest").textContent = d.queue.pending === 0 ? "none" : duration(d.queue.oldest_pending_age_s);
    $("t-workers").textContent = d.workers.up === null ? "on the workers" : num(d.workers.up, 0);
    $("t-totals").textContent = `${num(d.totals.jobs_success, 0)} / ${num(d.totals.jobs_failure, 0)} · ${num(d.totals.http_5xx, 0)}`;

    const rows = d.recent_errors.map((e) => {
      const tr = document.createElement("tr");
      for (const [text, cls] of [[e.at.replace("T", " ").slice(0, 19), ""], [e.source, ""], [e.task_id || "", ""], [e.message, "msg"]]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td colspan="4" class="muted">none</td>';
      rows.push(tr);
    }
    $("errors").replaceChildren(...rows);

    const quality = (d.quality || []).map((q) => {
      const tr = document.createElement("tr");
      for (const text of [q.model_version, num(q.labelled, 0), ...["roc_auc", "pr_auc", "precision_at_k", "brier", "ece"].map((m) => (q[m] === null || q[m] === undefined ? "–" : q[m].toFixed(3)))]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    });
    if (!quality.length) {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td colspan="7" class="muted">no outcomes yet</td>';
      quality.push(tr);
    }
    $("quality").replaceChildren(...quality);

    const status = $("status");
    status.className = "status live";
    const store = d.queue.store_up === false ? " · store unreachable" : "";
    $("status-text").textContent =
      `live · updated ${d.generated_at.slice(11, 19)} UTC · window ${duration(d.window_s)} · every ${d.interval_s} s${store}`;
  }

  async function refresh() {
    try {
      const response = await fetch("dashboard/data", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      render(data);
      board.data = data;
      board.updates += 1;
      if (board.firstDataAt === null) board.firstDataAt = performance.now();
    } catch (error) {
      board.failures += 1;
      board.lastError = String(error);
      $("status").className = "status down";
      $("status-text").textContent = `disconnected (${error}); retrying`;
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  // The shadow panel: each running shadow against the champion (the service recomputes it at most once a minute).
  const SHADOWS_REFRESH_MS = 15000;

  function renderShadows(d) {
    const rows = d.shadows.map((s) => {
      const tr = document.createElement("tr");
      const auc = s.roc_auc_champion === null || s.roc_auc_champion === undefined
        ? "–" : `${num(s.roc_auc_champion, 3)} → ${num(s.roc_auc_challenger, 3)}`;
      const cells = [
        s.version, num(s.fraction, 2), num(s.n_reports, 0), num(s.pearson, 3), num(s.spearman, 3),
        num(s.top_10_overlap, 2), num(s.n_labelled, 0), auc, s.verdict || "–",
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td colspan="9" class="muted">no shadow running (reportscore models shadow V)</td>';
      rows.push(tr);
    }
    $("shadows").replaceChildren(...rows);
    $("shadows-champion").textContent = d.champion ? `against champion ${d.champion}` : "";
    board.shadows = d;
  }

  async function refreshShadows() {
    try {
      const response = await fetch("dashboard/shadows", { cache: "no-store", headers: { Accept: "application/json" } });
      if (response.ok) renderShadows(await response.json());
    } catch (_error) {
      // the main panel reports connectivity
    } finally {
      setTimeout(refreshShadows, SHADOWS_REFRESH_MS);
    }
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [key, chart] of Object.entries(board.charts)) chart.setSize(size($(`c-${key}`)));
    }, 100);
  });

  refresh();
  refreshShadows();
})();
