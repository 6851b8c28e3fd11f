// The one drawing stack of the console and of report.html (which inlines this file and Chart.js).
// Draws every <canvas data-chart="ID"> from the JSON in <script type="application/json" id="ID">, every
// <div data-graph="ID"> (accounts bundled by shared entities), and makes every <table data-page-size="N">
// sortable, filterable and paged. All text from the data goes in through textContent, never as markup.
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626",
                 "#4b5563", "#a16207", "#0f766e", "#9333ea"];
  var SVGNS = "http://www.w3.org/2000/svg";
  // Evidence kinds: a fixed colour and a short code each (codes name the entities a group node shares).
  var KINDS = { payment: ["#c2410c", "pay"], ja4: ["#db2777", "tls"], header_fp: ["#7c3aed", "hdr"],
                creation_burst: ["#0891b2", "burst"], payment_burst: ["#0e7490", "cardburst"], sync: ["#65a30d", "sync"], email_pattern: ["#0f766e", "mail"],
                user_agent: ["#4b5563", "ua"], template: ["#2563eb", "tpl"], system_prompt: ["#a16207", "sys"],
                task_item: ["#9333ea", "task"], email_domain: ["#14b8a6", "dom"], intel: ["#dc2626", "intel"],
                ip24: ["#64748b", "net"], asn: ["#94a3b8", "asn"] };
  function kindColour(k) { return KINDS[k] ? KINDS[k][0] : colourFor(k); }

  // A model (or evidence kind) keeps its colour on every page: FNV-1a hash of its name into the palette.
  function colourFor(name) {
    var h = 0x811c9dc5, s = String(name);
    for (var i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
    return PALETTE[h % PALETTE.length];
  }

  function markerIndex(labels, at) {
    for (var i = 0; i < labels.length; i++) { if (labels[i] >= at) { return labels[i] === at || i > 0 ? i : -1; } }
    return -1;
  }

  function markersPlugin(markers) {
    return {
      id: "dgMarkers",
      afterDatasetsDraw: function (chart) {
        var area = chart.chartArea, ctx = chart.ctx, x = chart.scales.x, row = 0;
        (markers || []).forEach(function (m) {
          var idx = markerIndex(chart.data.labels, m.at);
          if (idx < 0) { return; }
          var px = x.getPixelForValue(idx);
          ctx.save();
          ctx.strokeStyle = m.colour || "#b91c1c"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1.5;
          ctx.beginPath(); ctx.moveTo(px, area.top); ctx.lineTo(px, area.bottom); ctx.stroke();
          ctx.fillStyle = m.colour || "#b91c1c"; ctx.font = "11px system-ui, sans-serif";
          var w = ctx.measureText(m.text).width, tx = px + 4 + w > area.right ? px - 4 - w : px + 4;
          ctx.fillText(m.text, tx, area.top + 10 + 13 * row++);
          ctx.restore();
        });
      }
    };
  }

  // Values written at the end of horizontal bars ("42%"), so a bar reads without the axis.
  function valueLabels(suffix) {
    return {
      id: "dgValues",
      afterDatasetsDraw: function (chart) {
        var ctx = chart.ctx, meta = chart.getDatasetMeta(0), data = chart.data.datasets[0].data;
        ctx.save(); ctx.fillStyle = "#111827"; ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
        meta.data.forEach(function (bar, i) { ctx.fillText(data[i] + (suffix || ""), bar.x + 4, bar.y); });
        ctx.restore();
      }
    };
  }

  // A long label in words as lines of at most ``width`` characters (Chart.js draws an array as lines).
  function wrap(text, width) {
    var lines = [], cur = "";
    String(text).split(" ").forEach(function (w) {
      if (cur && (cur + " " + w).length > width) { lines.push(cur); cur = w; } else { cur = cur ? cur + " " + w : w; }
    });
    if (cur) { lines.push(cur); }
    return lines.length > 1 ? lines : String(text);
  }

  function draw(canvas) {
    var src = document.getElementById(canvas.getAttribute("data-chart"));
    if (!src || typeof Chart === "undefined") { return; }
    var spec = JSON.parse(src.textContent), hbar = spec.type === "hbar", line = spec.type === "line";
    var datasets = (spec.series || []).map(function (s, i) {
      var c = spec.model_colours ? colourFor(s.label) : PALETTE[i % PALETTE.length];
      return { label: s.label, data: s.data, borderWidth: line ? 2 : 0, backgroundColor: line ? c + "33" : c,
               borderColor: c, pointRadius: 0, fill: line };
    });
    var options = {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: !hbar && datasets.length > 1, position: "top" } },
      scales: {
        x: { stacked: !!spec.stacked, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 10 } },
        y: { stacked: !!spec.stacked, beginAtZero: true, title: { display: !!spec.y_label, text: spec.y_label || "" } }
      }
    };
    var plugins = [markersPlugin(spec.markers)];
    if (hbar) {
      options.indexAxis = "y";
      options.layout = { padding: { right: 40 } };
      options.scales = {
        x: { beginAtZero: true, max: spec.max, title: { display: !!spec.x_label, text: spec.x_label || "" },
             ticks: { callback: function (v) { return v + (spec.suffix || ""); } } },
        y: { ticks: { autoSkip: false } }
      };
      if (spec.counts) {
        options.plugins.tooltip = { callbacks: { afterLabel: function (c) { return spec.counts[c.dataIndex] + " requests"; } } };
      }
      plugins.push(valueLabels(spec.suffix));
      canvas.parentNode.style.height = Math.max(120, 36 * spec.labels.length + 60) + "px";
    }
    var labels = hbar ? spec.labels.map(function (l) { return wrap(l, 26); }) : spec.labels;
    new Chart(canvas, { type: hbar ? "bar" : spec.type || "bar", data: { labels: labels, datasets: datasets },
                        options: options, plugins: plugins });
    canvas.setAttribute("data-drawn", "1");
  }

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(e); }
    return e;
  }

  // Account groups (same set of shared entities) on the left, entities on the right (rarest kinds on top).
  function drawGraph(host) {
    var src = document.getElementById(host.getAttribute("data-graph"));
    if (!src) { return; }
    var g = JSON.parse(src.textContent), link = host.getAttribute("data-link");
    var rowH = 26, W = 860, gx = 190, ex = 500;
    var n = Math.max(g.groups.length, g.entities.length, 1), H = 16 + n * rowH;
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, "class": "bundle", role: "img",
                          "aria-label": "account groups and the entities they share" }, host);
    var ey = {}, gy = [];
    var eStep = H / Math.max(g.entities.length, 1), gStep = H / Math.max(g.groups.length, 1);
    var seen = {}, code = {};
    g.entities.forEach(function (e, i) {
      ey[e.i] = eStep * (i + 0.5);
      var c = KINDS[e.kind] ? KINDS[e.kind][1] : e.kind;
      seen[c] = (seen[c] || 0) + 1; code[e.i] = c + seen[c];
    });
    g.groups.forEach(function (_, i) { gy.push(gStep * (i + 0.5)); });
    var edges = el("g", {}, svg), lines = [];
    g.groups.forEach(function (grp, gi) {
      grp.links.forEach(function (lk) {
        var ei = lk[0], share = lk[1] / grp.n, kind = g.entities[ei].kind;
        var l = el("line", { x1: gx, y1: gy[gi], x2: ex, y2: ey[ei], stroke: kindColour(kind),
                             "stroke-opacity": 0.25 + 0.4 * share, "stroke-width": 0.6 + 4 * share }, edges);
        el("title", {}, l).textContent = lk[1] + " of " + grp.n + " → " + g.entities[ei].kind_words;
        l.setAttribute("data-group", gi); l.setAttribute("data-o", 0.25 + 0.4 * share); lines.push(l);
      });
    });
    var panel = document.createElement("div");
    panel.className = "group-panel"; panel.setAttribute("aria-live", "polite");
    g.entities.forEach(function (e) {
      var y = ey[e.i], r = el("rect", { x: ex - 6, y: y - 6, width: 12, height: 12, rx: 2, fill: kindColour(e.kind) }, svg);
      el("title", {}, r).textContent = e.kind_words + ": " + e.entity + " (" + e.n_accounts + " accounts)";
      var t = el("text", { x: ex + 12, y: y + 4, "class": "ent" }, svg);
      var v = String(e.entity);
      t.textContent = code[e.i] + "  " + e.kind_words + ": " + (v.length > 18 ? v.slice(0, 17) + "…" : v) + " · " + e.n_accounts + " accounts";
    });
    g.groups.forEach(function (grp, gi) {
      var y = gy[gi], rad = Math.min(6 + 3 * Math.sqrt(grp.n), 16);
      var node = el("g", { "class": "grp", tabindex: 0, role: "button", "data-group": gi }, svg);
      el("circle", { cx: gx, cy: y, r: rad, fill: "#1f2937" }, node);
      var num = el("text", { x: gx, y: y + 4, "text-anchor": "middle", "class": "n" }, node);
      num.textContent = grp.n;
      var lab = el("text", { x: gx - rad - 6, y: y + 4, "text-anchor": "end", "class": "lab" }, node);
      lab.textContent = grp.key.length ? grp.key.map(function (i) { return code[i]; }).join(" + ")
        : (grp.n === 1 ? grp.accounts[0].slice(0, 24) : "no rare evidence");
      el("title", {}, node).textContent = grp.n + " account(s) — click to list them";
      function open() {
        lines.forEach(function (l) {
          l.setAttribute("stroke-opacity", l.getAttribute("data-group") === String(gi) ? 0.95 : 0.05); });
        while (panel.firstChild) { panel.removeChild(panel.firstChild); }
        var h = document.createElement("p");
        h.textContent = grp.n + " account(s); of them: " + grp.links.map(function (lk) {
          return lk[1] + " share " + g.entities[lk[0]].kind_words + " " + g.entities[lk[0]].entity; }).join("; ");
        panel.appendChild(h);
        var ul = document.createElement("ul"); ul.className = "group-accounts";
        grp.accounts.forEach(function (a) {
          var li = document.createElement("li"), x;
          if (link) { x = document.createElement("a"); x.href = link + encodeURIComponent(a); } else { x = document.createElement("code"); }
          x.textContent = a; li.appendChild(x); ul.appendChild(li);
        });
        panel.appendChild(ul);
        host.setAttribute("data-open", gi);
      }
      node.addEventListener("click", open);
      node.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } });
    });
    host.appendChild(panel);
    host.setAttribute("data-drawn", "1");
  }

  function cellKey(td) {
    var raw = td.hasAttribute("data-sort") ? td.getAttribute("data-sort") : td.textContent.trim();
    var num = raw.replace(/[,%\s]/g, "");
    return num !== "" && !isNaN(num) ? [0, parseFloat(num)] : [1, raw.toLowerCase()];
  }

  // Client-side paging, sorting and filtering of a table already on the page (server pages bound its size).
  function enhanceTable(table) {
    var size = parseInt(table.getAttribute("data-page-size"), 10) || 25, body = table.tBodies[0];
    if (!body) { return; }
    var rows = Array.prototype.slice.call(body.rows), shown = rows, page = 0, sortCol = -1, asc = true;
    var bar = document.createElement("div"); bar.className = "tablebar";
    var filter = document.createElement("input");
    filter.type = "search"; filter.placeholder = "filter rows…"; filter.setAttribute("aria-label", "filter rows");
    var info = document.createElement("span"); info.className = "muted small";
    var prev = document.createElement("button"), next = document.createElement("button");
    prev.type = next.type = "button"; prev.textContent = "← previous"; next.textContent = "next →";
    prev.className = "pg-prev"; next.className = "pg-next";
    bar.appendChild(filter); bar.appendChild(info); bar.appendChild(prev); bar.appendChild(next);
    table.parentNode.insertBefore(bar, table);
    function render() {
      var pages = Math.max(1, Math.ceil(shown.length / size));
      page = Math.min(page, pages - 1);
      rows.forEach(function (r) { r.hidden = true; });
      shown.slice(page * size, (page + 1) * size).forEach(function (r) { r.hidden = false; body.appendChild(r); });
      info.textContent = shown.length ? (page * size + 1) + "–" + Math.min((page + 1) * size, shown.length) + " of " + shown.length
        + (shown.length < rows.length ? " (filtered from " + rows.length + ")" : "") : "no matching rows";
      prev.disabled = page === 0; next.disabled = page >= pages - 1;
      bar.hidden = rows.length <= size && !filter.value;
    }
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase();
      shown = rows.filter(function (r) { return r.textContent.toLowerCase().indexOf(q) >= 0; });
      page = 0; render();
    });
    prev.addEventListener("click", function () { page--; render(); });
    next.addEventListener("click", function () { page++; render(); });
    // Tables the server sorts (their headers are links) keep that; the rest sort here.
    var ths = table.tHead && !table.hasAttribute("data-server-sort") ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(ths, function (th, col) {
      th.classList.add("sortable"); th.tabIndex = 0; th.title = "sort";
      function sort() {
        asc = sortCol === col ? !asc : true; sortCol = col;
        Array.prototype.forEach.call(ths, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var cmp = function (a, b) {
          var x = cellKey(a.cells[col]), y = cellKey(b.cells[col]);
          return (x[0] - y[0]) || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
        };
        rows.sort(function (a, b) { return asc ? cmp(a, b) : cmp(b, a); });
        shown.sort(function (a, b) { return asc ? cmp(a, b) : cmp(b, a); });
        page = 0; render();
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { sort(); } });
    });
    render();
    table.setAttribute("data-enhanced", "1");
  }

  function each(sel, fn) { Array.prototype.forEach.call(document.querySelectorAll(sel), fn); }

  document.addEventListener("DOMContentLoaded", function () {
    each("canvas[data-chart]", draw);
    each("div[data-graph]", drawGraph);
    each("table[data-page-size]", enhanceTable);
  });
  window.dgColourFor = colourFor;
})();
