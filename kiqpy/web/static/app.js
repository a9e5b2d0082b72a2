// kiqpy dashboard: live polling, charts, and small conveniences. No libraries, no inline
// script (the Content-Security-Policy allows only this file), nothing fetched from elsewhere.
// Every value from the server is put in the page with textContent, never as HTML.
"use strict";

(function () {
  var LIVE_KEY = "kiqpy-live";
  var INTERVAL_KEY = "kiqpy-poll-ms";
  var SVG = "http://www.w3.org/2000/svg";
  var timer = null;
  var samples = { labels: [], processed: [], failed: [], last: null };

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  // -- conveniences ---------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-select-all]")) {
      $all("input[name=ids]", target.form || document).forEach(function (box) {
        box.checked = target.checked;
      });
    } else if (target.closest("form[data-autosubmit]")) {
      target.form.submit();
    }
  });

  // -- charts ---------------------------------------------------------------------------------
  function node(name, attrs, parent) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { el.setAttribute(key, attrs[key]); });
    if (parent) { parent.appendChild(el); }
    return el;
  }

  function text(parent, x, y, content, anchor) {
    var el = node("text", { x: x, y: y, "text-anchor": anchor || "start" }, parent);
    el.textContent = content;
    return el;
  }

  // Draws series (arrays of numbers, one per label) as lines in an SVG filling `container`.
  // Drawn at the container's own pixel size, so text stays readable on a phone and a laptop.
  function drawChart(container, labels, series) {
    container.kiqpyChart = [labels, series];
    var box = { width: Math.max(280, container.clientWidth || 640), height: 200,
      left: 48, right: 10, top: 12, bottom: 28, labels: labels, max: 1 };
    series.forEach(function (s) { s.values.forEach(function (v) { box.max = Math.max(box.max, v); }); });
    box.plotW = box.width - box.left - box.right;
    box.plotH = box.height - box.top - box.bottom;
    box.step = labels.length > 1 ? box.plotW / (labels.length - 1) : 0;
    box.x = function (i) { return box.left + (labels.length > 1 ? i * box.step : box.plotW / 2); };
    box.y = function (v) { return box.top + box.plotH - (v / box.max) * box.plotH; };
    var svg = node("svg", { viewBox: "0 0 " + box.width + " " + box.height, role: "img",
      "aria-label": series.map(function (s) { return s.name; }).join(" and ") + " per " +
        container.getAttribute("data-unit") });
    drawAxes(svg, box);
    series.forEach(function (s) {
      var points = s.values.map(function (v, i) { return box.x(i) + "," + box.y(v); }).join(" ");
      node("polyline", { points: points, "class": "line " + s.cls }, svg);
    });
    drawHoverTargets(svg, box, series);
    container.replaceChildren(svg, legend(series));
  }

  function drawAxes(svg, box) {
    [0, 0.5, 1].forEach(function (f) {
      var value = Math.round(box.max * f);
      node("line", { x1: box.left, x2: box.width - box.right, y1: box.y(value), y2: box.y(value),
        "class": "grid" }, svg);
      text(svg, box.left - 6, box.y(value) + 4, value.toLocaleString(), "end");
    });
    var last = box.labels.length - 1;
    [0, Math.floor(last / 2), last].forEach(function (i, n, all) {
      if (last >= 0 && (n === 0 || i !== all[n - 1])) {
        text(svg, box.x(i), box.height - 8, box.labels[i], ["start", "middle", "end"][n]);
      }
    });
  }

  // One invisible column per label whose tooltip gives every series' value there.
  function drawHoverTargets(svg, box, series) {
    var width = Math.max(box.step, 4);
    box.labels.forEach(function (label, i) {
      var hit = node("rect", { x: box.x(i) - width / 2, y: box.top, width: width,
        height: box.plotH, "class": "hit" }, svg);
      node("title", {}, hit).textContent = label + ": " + series.map(function (s) {
        return s.name + " " + s.values[i].toLocaleString();
      }).join(", ");
    });
  }

  function legend(series) {
    var box = document.createElement("p");
    box.className = "legend";
    series.forEach(function (s) {
      var item = document.createElement("span");
      item.className = "key " + s.cls;
      item.textContent = s.name;
      box.appendChild(item);
    });
    return box;
  }

  function drawHistory() {
    var container = $("#history-chart");
    if (!container) { return; }
    var data = JSON.parse(container.getAttribute("data-chart"));
    container.setAttribute("data-unit", "day");
    drawChart(container, data.dates, [
      { name: "Processed", values: data.processed, cls: "processed" },
      { name: "Failed", values: data.failed, cls: "failed" }]);
  }

  function drawLive(stats) {
    var container = $("#live-graph");
    if (!container) { return; }
    var now = new Date();
    if (samples.last) {
      samples.labels.push(now.toTimeString().slice(0, 8));
      samples.processed.push(Math.max(0, stats.processed - samples.last.processed));
      samples.failed.push(Math.max(0, stats.failed - samples.last.failed));
      if (samples.labels.length > 60) {
        ["labels", "processed", "failed"].forEach(function (k) { samples[k].shift(); });
      }
      container.setAttribute("data-unit", "poll");
      drawChart(container, samples.labels, [
        { name: "Processed", values: samples.processed, cls: "processed" },
        { name: "Failed", values: samples.failed, cls: "failed" }]);
    }
    samples.last = stats;
  }

  // -- live polling ---------------------------------------------------------------------------
  function interacting(main) {
    var active = document.activeElement;
    return $all("input[name=ids]:checked", main).length > 0 ||
      (active && main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }

  function refreshMain() {
    var main = $("#main");
    if (!main || $("#live-graph") || interacting(main)) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null || interacting(main)) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("#main");
        if (fresh) { main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes)); }
      })
      .catch(function () { /* the next poll tries again */ });
  }

  function pollStats() {
    fetch(document.body.getAttribute("data-stats-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        $all("[data-stat]").forEach(function (el) {
          var value = data.kiqpy[el.getAttribute("data-stat")];
          if (typeof value === "number") { el.textContent = value.toLocaleString("en-US"); }
        });
        drawLive(data.kiqpy);
      })
      .catch(function () { /* Redis or the server is away: keep the last figures */ });
  }

  function poll() {
    pollStats();
    refreshMain();
  }

  function setLive(on) {
    var button = $("#live-toggle");
    window.localStorage.setItem(LIVE_KEY, on ? "on" : "off");
    if (button) {
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.textContent = on ? "Live: on" : "Live: off";
    }
    document.body.classList.toggle("is-live", on);
    if (timer) { window.clearInterval(timer); timer = null; }
    var every = Math.max(500, parseInt(window.localStorage.getItem(INTERVAL_KEY), 10) || 5000);
    if (on) {
      poll();
      timer = window.setInterval(poll, every);
    } else if ($("#live-graph")) {
      // The dashboard's "right now" graph draws whether or not Live is on, as Sidekiq's
      // does: with Live off only the counters and the graph are polled, never the page.
      pollStats();
      timer = window.setInterval(pollStats, every);
    }
  }

  window.addEventListener("resize", function () {
    $all(".chart").forEach(function (chart) {
      if (chart.kiqpyChart) { drawChart(chart, chart.kiqpyChart[0], chart.kiqpyChart[1]); }
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    drawHistory();
    var button = $("#live-toggle");
    if (button) {
      button.addEventListener("click", function () {
        setLive(button.getAttribute("aria-pressed") !== "true");
      });
    }
    setLive(window.localStorage.getItem(LIVE_KEY) === "on");
  });
})();
