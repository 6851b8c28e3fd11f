// Draws every <canvas data-chart="ID"> from the JSON in <script type="application/json" id="ID">.
// Loaded from /static so the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626", "#4b5563"];

  function markerPlugin(label) {
    return {
      id: "releaseMarker",
      afterDatasetsDraw: function (chart) {
        if (!label) { return; }
        var x = chart.scales.x, idx = chart.data.labels.indexOf(label);
        if (idx < 0) { return; }
        var px = x.getPixelForValue(idx), ctx = chart.ctx, area = chart.chartArea;
        ctx.save();
        ctx.strokeStyle = "#b91c1c"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.moveTo(px, area.top); ctx.lineTo(px, area.bottom); ctx.stroke();
        ctx.fillStyle = "#b91c1c"; ctx.font = "11px system-ui, sans-serif";
        ctx.fillText("new model first seen", px + 4, area.top + 10);
        ctx.restore();
      }
    };
  }

  function draw(canvas) {
    var src = document.getElementById(canvas.getAttribute("data-chart"));
    if (!src || typeof Chart === "undefined") { return; }
    var spec = JSON.parse(src.textContent);
    var doughnut = spec.type === "doughnut";
    var datasets = (spec.series || []).map(function (s, i) {
      return {
        label: s.label, data: s.data, borderWidth: doughnut ? 1 : 0,
        backgroundColor: doughnut ? PALETTE.slice(0, s.data.length) : PALETTE[i % PALETTE.length]
      };
    });
    var options = {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: doughnut || datasets.length > 1, position: doughnut ? "right" : "top" } }
    };
    if (!doughnut) {
      options.scales = {
        x: { stacked: !!spec.stacked, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } },
        y: { stacked: !!spec.stacked, beginAtZero: true, title: { display: !!spec.y_label, text: spec.y_label || "" } }
      };
    }
    new Chart(canvas, { type: spec.type || "bar", data: { labels: spec.labels, datasets: datasets },
                        options: options, plugins: [markerPlugin(spec.marker)] });
    canvas.setAttribute("data-drawn", "1");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) { draw(canvases[i]); }
  });
})();
