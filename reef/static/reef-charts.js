// Metric charts on the run page: one uPlot chart per metric curve, refreshed while the run
// is live.
(function () {
  "use strict";

  function series(points) {
    var xs = [], ys = [];
    points.forEach(function (p, i) {
      xs.push(p[0] === null ? i : p[0]);
      ys.push(p[1]);
    });
    return [xs, ys];
  }

  // Tick labels that stay distinct for tiny values (e.g. an ONNX parity diff of 2e-7).
  function ticks(u, splits) {
    return splits.map(function (v) {
      if (v === 0) return "0";
      var a = Math.abs(v);
      return a < 1e-3 || a >= 1e6 ? v.toExponential(1) : String(Number(v.toPrecision(4)));
    });
  }

  // A metric logged once has one x value: centre it instead of uPlot's default 0..100.
  function xRange(u, min, max) {
    var xs = u.data[0];
    return xs.length === 1 ? [xs[0] - 1, xs[0] + 1] : [min, max];
  }

  // One-line explanations of metric names (reef/metric_help.py), shown on hover.
  function explain(root, key) {
    var help = root.dataset.help ? JSON.parse(root.dataset.help) : {};
    return help[key] || help[key.split("/").pop()] || "";
  }

  function draw(root, data, charts) {
    Object.keys(data).sort().forEach(function (key) {
      if (data[key].length < 2) return;  // single values are listed with the run's status
      var d = series(data[key]);
      if (charts[key]) { charts[key].setData(d); return; }
      var box = document.createElement("div");
      box.className = "chart";
      box.dataset.metric = key;
      box.title = explain(root, key);
      root.appendChild(box);
      charts[key] = new uPlot({
        title: key, width: Math.min(520, root.clientWidth || 520), height: 220,
        scales: { x: { time: false, range: xRange } },
        axes: [{}, { values: ticks, size: 60 }],
        series: [{ label: "step" }, { label: key, stroke: "#0b6e99", width: 2 }],
      }, d, box);
    });
    root.dataset.drawn = String(Object.keys(charts).length);
  }

  function finished() {
    var el = document.getElementById("live-inner");
    return el && ["succeeded", "failed", "cancelled"].indexOf(el.dataset.status) >= 0;
  }

  function start() {
    var root = document.getElementById("charts");
    if (!root) return;
    var charts = {};
    function load() {
      fetch(root.dataset.src, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          draw(root, data, charts);
          if (root.dataset.live === "true" && !finished()) setTimeout(load, 2000);
          else if (root.dataset.live === "true") { root.dataset.live = "false"; setTimeout(load, 500); }
        });
    }
    load();
  }

  // The compare page: one chart per metric, a series per run, x values merged.
  var PALETTE = ["#0b6e99", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#495057",
                 "#c2255c", "#1864ab", "#5c940d", "#0b7285"];

  function overlay(byRun) {
    var runs = Object.keys(byRun), xs = {};
    runs.forEach(function (r) { byRun[r].forEach(function (p, i) { xs[p[0] === null ? i : p[0]] = 1; }); });
    var x = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
    var data = [x];
    runs.forEach(function (r) {
      var at = {};
      byRun[r].forEach(function (p, i) { at[p[0] === null ? i : p[0]] = p[1]; });
      data.push(x.map(function (v) { return v in at ? at[v] : null; }));
    });
    return { runs: runs, data: data };
  }

  function startCompare() {
    var root = document.getElementById("compare-charts");
    var source = document.getElementById("compare-data");
    if (!root || !source) return;
    var curves = JSON.parse(source.textContent);
    Object.keys(curves).sort().forEach(function (key) {
      var longest = Math.max.apply(null, Object.values(curves[key]).map(function (p) { return p.length; }));
      if (longest < 2) return;
      var o = overlay(curves[key]), box = document.createElement("div");
      box.className = "chart";
      box.dataset.metric = key;
      root.appendChild(box);
      new uPlot({
        title: key, width: 520, height: 240, scales: { x: { time: false } },
        axes: [{}, { values: ticks, size: 60 }],
        series: [{ label: "step" }].concat(o.runs.map(function (r, i) {
          return { label: "#" + r, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true };
        })),
      }, o.data, box);
    });
    root.dataset.drawn = String(root.children.length);
  }

  // The sweep page: the metric against each numeric parameter, one point per trial.
  function startSweep() {
    var root = document.getElementById("sweep-charts");
    var source = document.getElementById("sweep-data");
    if (!root || !source) return;
    var d = JSON.parse(source.textContent);
    d.names.forEach(function (name) {
      var pts = d.trials.filter(function (t) {
        return t.metric !== null && typeof t.params[name] === "number";
      }).sort(function (a, b) { return a.params[name] - b.params[name]; });
      if (pts.length < 2) return;
      var box = document.createElement("div");
      box.className = "chart";
      box.dataset.param = name;
      root.appendChild(box);
      new uPlot({
        title: d.metric + " vs " + name, width: 420, height: 220, scales: { x: { time: false } },
        axes: [{}, { values: ticks, size: 60 }],
        series: [{ label: name }, { label: d.metric, stroke: "#0b6e99", width: 0,
                                    points: { show: true, size: 8, fill: "#0b6e99" } }],
      }, [pts.map(function (t) { return t.params[name]; }), pts.map(function (t) { return t.metric; })], box);
    });
  }

  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("DOMContentLoaded", startCompare);
  document.addEventListener("DOMContentLoaded", startSweep);
  document.addEventListener("htmx:afterSwap", startSweep);  // the sweep page refreshes itself
})();
