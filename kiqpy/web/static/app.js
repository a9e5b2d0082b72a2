// kiqpy dashboard: live polling, charts, and small conveniences. No libraries, no inline
// script (the Content-Security-Policy allows only this file), nothing fetched from elsewhere.
// Every value from the server is put in the page with textContent, never as HTML.
"use strict";

(function () {
  var LIVE_KEY = "kiqpy-live";
  var TZ_KEY = "kiqpy-times";  // "utc" (the default, as the server writes them) or "local"
  var THEME_KEY = "kiqpy-theme";  // "auto" (prefers-color-scheme), "dark" or "light"
  var THEMES = ["auto", "dark", "light"];
  var INTERVAL_KEY = "kiqpy-poll-ms";
  var SVG = "http://www.w3.org/2000/svg";
  var timer = null;
  var samples = { labels: [], processed: [], failed: [], last: null };
  // When the figures on screen were last read from Redis (the page's own load at first), and
  // whether the last poll failed: the status beside Live says so instead of staying green.
  var connection = { shownAt: new Date(), down: false };

  // Loaded in <head> without defer, so a chosen theme is set before the page paints (no flash
  // of the other one); everything else waits for DOMContentLoaded.
  var chosen = window.localStorage.getItem(THEME_KEY);
  if (chosen === "dark" || chosen === "light") {
    document.documentElement.setAttribute("data-theme", chosen);
  }

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  // -- conveniences ---------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Column sorting of the rows on the page (Queues: size, latency): biggest first, then
  // flipped on the next click. The rows are all on the page; nothing is asked of the server.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.sort[data-sort]");
    if (!button) { return; }
    var body = $("tbody[data-sortable]", button.closest("table"));
    if (!body) { return; }
    var key = "data-" + button.getAttribute("data-sort");
    var descending = button.getAttribute("aria-sort") !== "descending";
    $all("button.sort", button.closest("table")).forEach(function (b) { b.removeAttribute("aria-sort"); });
    button.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var rows = $all("tr", body);
    rows.sort(function (a, b) {
      var diff = parseFloat(a.getAttribute(key)) - parseFloat(b.getAttribute(key));
      return descending ? -diff : diff;
    });
    body.replaceChildren.apply(body, rows);
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

  // -- times: relative ones tick, absolute ones in UTC or local time ---------------------------
  // [data-time] holds epoch seconds. Inside .abs-time it is shown as a date and time; anywhere
  // else as "3m 5s ago" / "in 2h 10m", recomputed every second as the server's ago() does.
  // [data-since] counts up ("running for").
  function duration(seconds) {
    var whole = Math.floor(seconds);
    var units = [["d", 86400, "h", 3600], ["h", 3600, "m", 60], ["m", 60, "s", 1]];
    for (var i = 0; i < units.length; i++) {
      var u = units[i];
      if (whole >= u[1]) { return Math.floor(whole / u[1]) + u[0] + " " + Math.floor(whole % u[1] / u[3]) + u[2]; }
    }
    return seconds < 10 ? seconds.toFixed(1) + "s" : whole + "s";
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function absolute(epoch, local) {
    var d = new Date(epoch * 1000);
    if (!local) { return d.toISOString().slice(0, 19).replace("T", " ") + " UTC"; }
    var offset = -d.getTimezoneOffset();
    var zone = "UTC" + (offset >= 0 ? "+" : "-") + pad(Math.floor(Math.abs(offset) / 60)) +
      (Math.abs(offset) % 60 ? ":" + pad(Math.abs(offset) % 60) : "");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + " " + zone;
  }

  function tickTimes() {
    var now = Date.now() / 1000;
    var local = window.localStorage.getItem(TZ_KEY) === "local";
    $all("[data-time]").forEach(function (el) {
      var epoch = parseFloat(el.getAttribute("data-time"));
      if (!isFinite(epoch)) { return; }  // inf / -inf: shown as stored
      if (el.classList.contains("abs-time")) {
        var prefix = el.textContent.indexOf("since ") === 0 ? "since " : "";
        el.textContent = prefix + absolute(epoch, local);
        return;
      }
      var delta = epoch - now;
      el.textContent = delta > 0.5 ? "in " + duration(Math.abs(delta)) : duration(Math.abs(delta)) + " ago";
    });
    $all("[data-since]").forEach(function (el) {
      var epoch = parseFloat(el.getAttribute("data-since"));
      if (isFinite(epoch)) { el.textContent = duration(Math.max(0, now - epoch)); }
    });
  }

  function setTimes(mode) {
    window.localStorage.setItem(TZ_KEY, mode);
    var button = $("#tz-toggle");
    if (button) { button.textContent = mode === "local" ? "Times: local" : "Times: UTC"; }
    tickTimes();
  }

  // -- theme and the phone menu ---------------------------------------------------------------
  function setTheme(theme) {
    if (THEMES.indexOf(theme) < 0) { theme = "auto"; }
    window.localStorage.setItem(THEME_KEY, theme);
    if (theme === "auto") {
      document.documentElement.removeAttribute("data-theme");
    } else {
      document.documentElement.setAttribute("data-theme", theme);
    }
    var button = $("#theme-toggle");
    if (button) { button.textContent = "Theme: " + theme; }
  }

  function setMenu(open) {
    var button = $("#menu-toggle");
    if (!button) { return; }
    button.setAttribute("aria-expanded", open ? "true" : "false");
    document.body.classList.toggle("menu-open", open);
  }

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

  // The Right-now card gets its axes at once, not a blank card until the second poll.
  function drawLiveAxes() {
    var container = $("#live-graph");
    if (!container || samples.labels.length) { return; }
    container.setAttribute("data-unit", "poll");
    drawChart(container, [], [
      { name: "Processed", values: [], cls: "processed" },
      { name: "Failed", values: [], cls: "failed" }]);
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

  // -- connection status ----------------------------------------------------------------------
  function clock(date) { return date.toTimeString().slice(0, 8); }

  function showStatus() {
    var status = $("#live-status");
    if (!status) { return; }
    status.textContent = connection.down ?
      "disconnected, showing data from " + clock(connection.shownAt) :
      "updated " + clock(connection.shownAt);
    status.hidden = false;
    status.classList.toggle("down", connection.down);
    var button = $("#live-toggle");
    if (button) { button.classList.toggle("down", connection.down); }
  }

  function polled(ok) {
    if (ok) { connection.shownAt = new Date(); }
    connection.down = !ok;
    showStatus();
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
        if (html === null) { polled(false); return; }
        if (interacting(main)) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("#main");
        if (fresh) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes));
          polled(true);
          tickTimes();
        }
      })
      .catch(function () { polled(false); /* the next poll tries again */ });
  }

  function pollStats() {
    fetch(document.body.getAttribute("data-stats-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { polled(false); return; }
        polled(true);
        $all("[data-stat]").forEach(function (el) {
          var value = data.kiqpy[el.getAttribute("data-stat")];
          if (typeof value === "number") { el.textContent = value.toLocaleString("en-US"); }
        });
        drawLive(data.kiqpy);
      })
      .catch(function () { polled(false); /* keep the last figures, and say they are old */ });
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
    var status = $("#live-status");
    if (status && !on && !$("#live-graph")) { status.hidden = true; }
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
    document.documentElement.classList.add("js");
    setTheme(window.localStorage.getItem(THEME_KEY) || "auto");
    setTimes(window.localStorage.getItem(TZ_KEY) === "local" ? "local" : "utc");
    window.setInterval(tickTimes, 1000);
    [["#theme-toggle", function () {
      var now = window.localStorage.getItem(THEME_KEY) || "auto";
      setTheme(THEMES[(THEMES.indexOf(now) + 1) % THEMES.length]);
    }], ["#tz-toggle", function () {
      setTimes(window.localStorage.getItem(TZ_KEY) === "local" ? "utc" : "local");
    }], ["#menu-toggle", function () {
      setMenu($("#menu-toggle").getAttribute("aria-expanded") !== "true");
    }]].forEach(function (pair) {
      var el = $(pair[0]);
      if (el) { el.addEventListener("click", pair[1]); }
    });
    drawHistory();
    drawLiveAxes();
    var button = $("#live-toggle");
    if (button) {
      button.addEventListener("click", function () {
        setLive(button.getAttribute("aria-pressed") !== "true");
      });
    }
    setLive(window.localStorage.getItem(LIVE_KEY) === "on");
  });
})();
