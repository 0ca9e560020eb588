// The desk page.
// 1. "Worst day P&L first" stays sorted while the board is live. live.js (the socket) and htmx (the
//    polling fallback) both replace a client's row by its id, where it stood; a moving P&L would leave
//    the rows out of order. Re-sorting the shown rows here, after any swap, costs no request and no
//    reconnect, works for both paths alike, and keeps the server as the one place that picks which
//    clients are on the page (a client from another page joins it on the next load or page change).
// 2. The desk P&L chart: today's sum of the visible clients' P&L samples (GET /desk/mtm.json).
(function () {
  function dayPnl(row) { return parseFloat(row.dataset.dayPnl); } // for ordering only; the figure shown is the server's Decimal
  function resort() {
    var body = document.querySelector("#client-table tbody[data-sort=pnl]");
    if (!body) return;
    var rows = Array.prototype.slice.call(body.children).filter(function (row) { return row.dataset.dayPnl !== undefined; });
    // Array.prototype.sort is stable: equal P&L keep the server's order (by name)
    var sorted = rows.slice().sort(function (a, b) { return dayPnl(a) - dayPnl(b); });
    if (sorted.every(function (row, i) { return row === rows[i]; })) return;
    sorted.forEach(function (row) { body.appendChild(row); }); // these moves call the observer again: a no-op then
  }
  var board = document.getElementById("desk-board");
  if (board && board.parentElement) {
    // the parent: a search or a page change swaps the whole board (its outerHTML)
    new MutationObserver(resort).observe(board.parentElement, { childList: true, subtree: true });
    resort();
  }

  var el = document.getElementById("desk-mtm-chart");
  if (!el || typeof LightweightCharts === "undefined") return;
  var dark = document.documentElement.dataset.theme !== "light";
  // attributionLogo off: the library draws it with an inline <style>, which the CSP refuses; the page
  // credits TradingView in text under the chart instead
  var chart = LightweightCharts.createChart(el, {
    width: el.clientWidth, height: 220,
    layout: { background: { color: "transparent" }, textColor: dark ? "#d6dde6" : "#18202b", attributionLogo: false },
    grid: { vertLines: { color: dark ? "#1b2330" : "#eef1f5" }, horzLines: { color: dark ? "#1b2330" : "#eef1f5" } },
    timeScale: { timeVisible: true, secondsVisible: false },
    localization: { priceFormatter: function (v) { return "₹" + v.toFixed(2); } }
  });
  var line = chart.addSeries(LightweightCharts.LineSeries, { color: "#4ea1ff", lineWidth: 2 });
  el.fanoutSeries = line; // the drawn series, for inspection (the browser tests read its points)
  // Times: the JSON carries UTC epoch seconds. Lightweight Charts has no time zones (it draws every
  // time as UTC), so each is shifted by IST's offset, +5:30 (no daylight saving): axis, crosshair and
  // day boundaries then read IST — the same approach as static/js/charts.js.
  var IST_OFFSET = 19800;
  function refresh() {
    fetch(el.dataset.series, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { series: [] }; })
      .then(function (data) {
        line.setData(data.series.map(function (p) { return { time: p.time + IST_OFFSET, value: parseFloat(p.value) }; }));
        el.dataset.drawn = String(data.series.length);
      });
  }
  refresh();
  setInterval(refresh, 10000);
  // the desk totals move live over the socket: the line's last point (the day P&L) follows, at most
  // once every 2 s however fast they come
  var pending = null;
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    if (pending || String(event.detail.message).indexOf('id="desk-totals"') < 0) return;
    pending = setTimeout(function () { pending = null; refresh(); }, 2000);
  });
  window.addEventListener("resize", function () { chart.applyOptions({ width: el.clientWidth }); });
})();
