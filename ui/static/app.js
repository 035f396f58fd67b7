// fleetmeter's pages: bars, charts (uPlot), the live overview and the alert
// buttons. Names from the data are untrusted text: this file only ever
// sets textContent, never HTML.
(function () {
  'use strict';

  var tz = document.body.dataset.tz || 'UTC';

  // Numbers for people, as the server formats them (ui/format.go).
  function thousands(n) {
    return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
  // Money, step by step as rollup.USD (rollup/units.go) writes it, so a
  // figure drawn live reads as the server and the CLI print it.
  function usd(v) {
    if (v == null || isNaN(v)) return '–';
    var sign = v < 0 ? '-' : '';
    v = Math.abs(v);
    if (v === 0) return '$0.00';
    if (v < 0.01) {
      var n = Math.round(v * 1e4);
      return n === 0 ? sign + '<$0.0001' : sign + '$0.' + ('000' + n).slice(-4);
    }
    var cents = Math.round(v * 100);
    var c = (cents % 100).toString();
    return sign + '$' + thousands(Math.floor(cents / 100)) + '.' + (c.length < 2 ? '0' + c : c);
  }
  function compact(n) {
    if (n == null || isNaN(n)) return '–';
    var a = Math.abs(n), sign = n < 0 ? '-' : '';
    var units = [[1e9, 'B'], [1e6, 'M'], [1e3, 'k']];
    for (var i = 0; i < units.length; i++) {
      if (a >= units[i][0]) {
        var x = a / units[i][0];
        return sign + x.toFixed(x >= 100 ? 0 : 1) + units[i][1];
      }
    }
    return sign + Math.round(a).toString();
  }
  function pct(v) { return v == null || isNaN(v) ? '–' : v.toFixed(1) + ' %'; }
  function change(p) {
    if (p == null) return 'new';
    if (p >= 0.05) return '▲ ' + pct(p);
    if (p <= -0.05) return '▼ ' + pct(-p);
    return '= 0.0 %';
  }
  function changeClass(p) {
    if (p == null) return 'new';
    return p >= 0.05 ? 'up' : p <= -0.05 ? 'down' : 'flat';
  }
  var dtf = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false });
  function when(iso) {
    var d = typeof iso === 'number' ? new Date(iso * 1000) : new Date(iso);
    if (isNaN(d)) return '–';
    var p = {};
    dtf.formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
    return p.year + '-' + p.month + '-' + p.day + ' ' + (p.hour === '24' ? '00' : p.hour) + ':' + p.minute;
  }
  function bytesPerSec(v) {
    if (v == null || isNaN(v)) return '–';
    var u = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'], i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return v.toFixed(i ? 1 : 0) + ' ' + u[i];
  }
  var fmt = {
    usd: usd, compact: compact, pct: pct, change: change, time: when, thousands: thousands,
    dec: function (v) { return v == null ? '–' : Number(v).toFixed(2); }
  };
  window.fleetmeterFormat = fmt; // the browser test holds it against the Go side

  // Bars: the width of each segment is its data-w percent.
  function bars(root) {
    root.querySelectorAll('[data-w]').forEach(function (el) {
      var w = parseFloat(el.dataset.w) || 0;
      el.style.width = Math.max(0, Math.min(100, w)) + '%';
    });
  }

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body && body.error ? body.error : r.status + ' ' + r.statusText);
        return body;
      });
    });
  }

  function say(el, text) {
    el.textContent = '';
    var p = document.createElement('p');
    p.className = 'chart-empty';
    p.textContent = text;
    el.appendChild(p);
  }

  // Charts are rebuilt when the theme or the width changes.
  var charts = [];
  function track(el, build) {
    var entry = { el: el, build: build, plots: [] };
    charts.push(entry);
    entry.plots = build() || [];
    return entry;
  }
  function rebuild(entry) {
    entry.plots.forEach(function (u) { u.destroy(); });
    entry.el.textContent = '';
    entry.plots = entry.build() || [];
  }
  function drawn(el) {
    return function () {
      el.dataset.drawn = '1';
      window.__chartsDrawn = (window.__chartsDrawn || 0) + 1;
      window.__chartsDrawnAt = performance.now(); // for the page-load benchmark
    };
  }
  function axis(stroke, values, side) {
    var a = { stroke: css('--muted'), grid: { stroke: css('--grid'), width: 1 }, ticks: { stroke: css('--grid'), width: 1 }, font: '11px system-ui, sans-serif' };
    if (values) a.values = function (u, vals) { return vals.map(values); };
    if (side) { a.side = side; a.grid = { show: false }; }
    if (stroke) a.stroke = stroke;
    return a;
  }
  function tzDate(ts) { return uPlot.tzDate(new Date(ts * 1000), tz); }

  // The time axis: dates on whole days, 24-hour times within them.
  var md = new Intl.DateTimeFormat('en-US', { timeZone: tz, month: 'short', day: 'numeric' });
  var hm = new Intl.DateTimeFormat('en-GB', { timeZone: tz, hour: '2-digit', minute: '2-digit', hour12: false });
  function timeAxis(daily) {
    var a = axis();
    a.space = 56;
    a.incrs = daily ? [86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 28 * 86400]
      : [300, 900, 1800, 3600, 2 * 3600, 3 * 3600, 4 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400];
    a.values = function (u, splits) {
      return splits.map(function (s) {
        var d = new Date(s * 1000);
        var t = hm.format(d);
        return daily || t === '00:00' ? md.format(d) : t;
      });
    };
    return a;
  }
  // Money on an axis: cents under $10, dollars above.
  function money(v) {
    if (v === 0) return '$0';
    return Math.abs(v) < 10 ? '$' + v.toFixed(2) : '$' + thousands(v);
  }

  // Cost per day (or hour), stacked by input, output, cache write and
  // cache read: each series is drawn over the sum of those below it.
  function costSplit(el, res) {
    var rows = res.rows;
    if (!rows.length) { say(el, 'Nothing in this range.'); return []; }
    var step = res.group_by === 'hour' ? 3600 : res.group_by === 'week' ? 7 * 86400 : 86400;
    var xs = rows.map(function (r) { return r.start; });
    var parts = [
      ['Input', 'input_cost_usd', '--c-input'], ['Output', 'output_cost_usd', '--c-output'],
      ['Cache write', 'cache_write_cost_usd', '--c-cwrite'], ['Cache read', 'cache_read_cost_usd', '--c-cread']
    ];
    var raw = parts.map(function (p) { return rows.map(function (r) { return r[p[1]]; }); });
    var cum = [], acc = xs.map(function () { return 0; });
    raw.forEach(function (vals) { acc = acc.map(function (a, i) { return a + vals[i]; }); cum.push(acc.slice()); });
    var series = [{ value: function (u, v) { return v == null ? '–' : (step === 3600 ? when(v) : when(v).slice(0, 10)); } }];
    var data = [xs];
    for (var i = parts.length - 1; i >= 0; i--) {
      (function (i) {
        var c = css(parts[i][2]);
        series.push({
          label: parts[i][0], stroke: c, fill: c, width: 0,
          paths: uPlot.paths.bars({ size: [0.82, 64], align: 1 }), points: { show: false },
          value: function (u, v, si, di) { return di == null ? '–' : usd(raw[i][di]); }
        });
        data.push(cum[i]);
      })(i);
    }
    series.push({ label: 'Total', show: true, stroke: 'transparent', width: 0, points: { show: false },
      value: function (u, v, si, di) { return di == null ? '–' : usd(cum[parts.length - 1][di]); } });
    data.push(cum[parts.length - 1]);
    var opts = {
      width: el.clientWidth, height: 280, tzDate: tzDate,
      scales: { x: { time: true, range: function () { return [xs[0], xs[xs.length - 1] + step]; } }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; } } },
      series: series,
      axes: [timeAxis(step >= 86400), Object.assign(axis(null, money), { size: 70 })],
      legend: { live: true },
      cursor: { points: { show: false } },
      hooks: { draw: [drawn(el)] }
    };
    return [new uPlot(opts, data, el)];
  }

  // Today's cost per hour.
  function spark(el, hours) {
    if (!hours || !hours.length) { say(el, 'No call yet today.'); return []; }
    var xs = hours.map(function (_, i) { return i; });
    var opts = {
      width: el.clientWidth, height: 180,
      scales: { x: { time: false, range: [0, 24] }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      series: [{ value: function (u, v) { return v == null ? '–' : v + ':00'; } },
        { label: 'Cost', stroke: css('--accent'), fill: css('--accent'), width: 0, points: { show: false }, paths: uPlot.paths.bars({ size: [0.8, 40], align: 1 }), value: function (u, v) { return usd(v); } }],
      axes: [Object.assign(axis(null, function (v) { return (v < 10 ? '0' : '') + v + ':00'; }), { splits: function () { return [0, 6, 12, 18, 24]; } }),
        Object.assign(axis(null, money), { size: 60, space: 36 })],
      legend: { show: false },
      cursor: { points: { show: false } },
      hooks: { draw: [drawn(el)] }
    };
    return [new uPlot(opts, [xs, hours], el)];
  }

  // The host's series, one panel each, on one synchronised time axis; the
  // fleet's cost per hour in its own panel and behind CPU and sessions.
  function host(el, h) {
    if (!h.t.length) { say(el, 'No host sample in this range yet: the daemon samples every 15 seconds.'); return []; }
    var t = h.t;
    // The cost of the hour (or day) each point falls in.
    var cost = t.map(function (x) {
      var c = h.cost, lo = 0, hi = c.t.length - 1, at = -1;
      while (lo <= hi) { var mid = (lo + hi) >> 1; if (c.t[mid] <= x) { at = mid; lo = mid + 1; } else hi = mid - 1; }
      return at >= 0 && x < c.t[at] + c.step_seconds ? c.usd_per_hour[at] : null;
    });
    var width = el.clientWidth;
    var range = [h.range.from, h.range.to];
    var costSeries = { label: 'Cost', scale: 'usd', stroke: css('--c-cost'), fill: css('--c-cost') + '30', width: 1, points: { show: false }, paths: uPlot.paths.stepped({ align: 1 }), value: function (u, v) { return v == null ? '–' : usd(v) + '/h'; } };
    var panels = [
      { title: 'Fleet cost, USD per hour', series: [[cost, costSeries]], axis: money, scale: 'usd', height: 150 },
      { title: 'CPU', series: [[h.cpu_pct, 'Busy', '--c-1'], [h.cpu_max_pct, 'Busy, max', '--c-1', true], [h.steal_pct, 'Steal', '--c-2'], [h.iowait_pct, 'I/O wait', '--c-4'], [cost, costSeries]], axis: function (v) { return v + '%'; }, max: 100 },
      { title: 'Memory and swap, % of RAM', series: [[h.mem_used_pct, 'Memory used', '--c-1'], [h.swap_used_pct, 'Swap used', '--c-2']], axis: function (v) { return v + '%'; }, max: 100 },
      { title: 'Load per core', series: [[h.load_per_core, 'Load 1 min / core', '--c-3']], axis: function (v) { return v.toFixed(1); } },
      { title: 'Disk used', series: [[h.disk_data_used_pct, 'Data disk', '--c-1'], [h.disk_root_used_pct, 'Root disk', '--c-6']], axis: function (v) { return v + '%'; }, max: 100 },
      { title: 'Network', series: [[h.net_in_bytes_per_s, 'In', '--c-3'], [h.net_out_bytes_per_s, 'Out', '--c-5']], axis: bytesPerSec },
      { title: 'Active sessions', series: [[h.active_sessions, 'Sessions', '--c-6'], [cost, costSeries]], axis: function (v) { return String(v); } }
    ];
    var plots = [];
    panels.forEach(function (p) {
      var box = document.createElement('div');
      box.className = 'panel';
      var h3 = document.createElement('h3');
      h3.textContent = p.title;
      box.appendChild(h3);
      var target = document.createElement('div');
      box.appendChild(target);
      el.appendChild(box);
      var series = [{ value: function (u, v) { return v == null ? '–' : when(v); } }];
      var data = [t];
      var hasCost = false;
      p.series.forEach(function (s) {
        if (typeof s[1] === 'object') { // the cost overlay
          series.push(s[1]);
          hasCost = true;
        } else {
          series.push({ label: s[1], stroke: css(s[2]), width: s[3] ? 1 : 1.5, dash: s[3] ? [4, 4] : undefined, spanGaps: false,
            value: function (u, v) { return v == null ? '–' : p.axis(Math.round(v * 100) / 100); } });
        }
        data.push(s[0]);
      });
      var scales = { x: { time: true, range: function () { return range; } } };
      var y = p.scale || 'y';
      scales[y] = { range: function (u, min, max) { return [0, p.max ? Math.max(p.max, max) : (max > 0 ? max * 1.1 : 1)]; } };
      var axes = [timeAxis(h.step_seconds >= 86400), axis(null, p.axis)];
      axes[1].scale = y;
      axes[1].size = 84;
      if (hasCost && y !== 'usd') {
        scales.usd = { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } };
        var a = axis(css('--c-cost'), money, 1);
        a.scale = 'usd';
        a.size = 70;
        axes.push(a);
      } else {
        // An empty right axis of the same width, so that every panel's
        // time axis lines up with the others'.
        axes.push({ scale: y, side: 1, size: 70, stroke: 'transparent', grid: { show: false }, ticks: { show: false }, values: function (u, vals) { return vals.map(function () { return ''; }); } });
      }
      var opts = {
        width: width, height: p.height || 170, tzDate: tzDate, scales: scales, series: series, axes: axes,
        cursor: { sync: { key: 'host', setSeries: false }, points: { size: 5 } },
        legend: { live: true },
        hooks: { draw: [drawn(el)] }
      };
      plots.push(new uPlot(opts, data, target));
    });
    return plots;
  }

  function setupCharts() {
    document.querySelectorAll('[data-chart]').forEach(function (el) {
      var kind = el.dataset.chart;
      if (kind === 'spark') {
        el.__hours = (el.dataset.hours || '').split(',').filter(function (x) { return x !== ''; }).map(Number);
        var entry = track(el, function () { return spark(el, el.__hours); });
        el.__entry = entry;
        return;
      }
      getJSON(el.dataset.src).then(function (res) {
        if (kind === 'cost-split') track(el, function () { return costSplit(el, res); });
        if (kind === 'host') track(el, function () { return host(el, res); });
      }).catch(function (err) { say(el, 'The chart could not be loaded: ' + err.message); });
    });
    var media = window.matchMedia('(prefers-color-scheme: dark)');
    if (media.addEventListener) media.addEventListener('change', function () { charts.forEach(rebuild); });
    var lastWidth = window.innerWidth, timer = null;
    window.addEventListener('resize', function () {
      if (window.innerWidth === lastWidth) return;
      lastWidth = window.innerWidth;
      clearTimeout(timer);
      timer = setTimeout(function () { charts.forEach(rebuild); }, 150);
    });
  }

  // The live overview: the figures are fetched again every 15 seconds
  // while the tab is visible.
  function get(obj, path) {
    return path.split('.').reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
  }
  function applyOverview(ov) {
    document.querySelectorAll('[data-live]').forEach(function (el) {
      var v = get(ov, el.dataset.live);
      if (v === undefined) return;
      var f = fmt[el.dataset.fmt];
      el.textContent = f ? f(v) : (v == null ? '' : String(v));
      if (el.dataset.fmt === 'change') el.className = 'chg ' + changeClass(v);
    });
    var list = document.querySelector('[data-live-list="attention"]');
    if (list) {
      list.textContent = '';
      (ov.attention.length ? ov.attention : [{ level: 'ok', text: 'Nothing needs attention.' }]).forEach(function (a) {
        var li = document.createElement('li');
        li.className = 'lvl-' + a.level;
        if (a.href) {
          var link = document.createElement('a');
          link.href = a.href;
          link.textContent = a.text;
          li.appendChild(link);
        } else {
          li.textContent = a.text;
        }
        list.appendChild(li);
      });
    }
    var sp = document.querySelector('[data-chart="spark"]');
    if (sp) {
      sp.__hours = ov.today_by_hour || [];
      if (sp.__entry) rebuild(sp.__entry);
    }
    var pulse = document.querySelector('.pulse');
    if (pulse) {
      pulse.classList.remove('stale', 'beat');
      void pulse.offsetWidth;
      pulse.classList.add('beat');
    }
  }
  function liveOverview() {
    var poll = function () {
      if (document.hidden) return;
      getJSON('/api/overview').then(applyOverview).catch(function () {
        var pulse = document.querySelector('.pulse');
        if (pulse) pulse.classList.add('stale');
      });
    };
    getJSON('/api/overview').then(applyOverview).catch(function () {});
    setInterval(poll, 15000);
    document.addEventListener('visibilitychange', function () { if (!document.hidden) poll(); });
  }

  // Alert buttons: acknowledge, snooze, test, through the JSON API.
  function alertButtons() {
    var msg = document.getElementById('alert-msg');
    document.querySelectorAll('[data-alert-action]').forEach(function (b) {
      b.addEventListener('click', function () {
        b.disabled = true;
        var body = { action: b.dataset.alertAction, rule: b.dataset.rule };
        if (b.dataset.for) body.for = b.dataset.for;
        fetch('/api/alerts', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
          .then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
          .then(function (res) {
            msg.classList.remove('hidden', 'bad', 'ok');
            msg.classList.add(res[0] ? 'ok' : 'bad');
            msg.textContent = res[0] ? 'Done: ' + body.action + ' ' + body.rule + '.' : (res[1].error || 'That failed.');
            if (res[0] && body.action !== 'test') setTimeout(function () { location.reload(); }, 700);
            b.disabled = false;
          })
          .catch(function (err) { msg.classList.remove('hidden'); msg.textContent = err.message; b.disabled = false; });
      });
    });
  }

  bars(document);
  if (typeof uPlot !== 'undefined') setupCharts();
  if (document.body.dataset.page === 'overview') liveOverview();
  alertButtons();
})();
