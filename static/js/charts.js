// Charts with lightweight-charts: a client's P&L line, an instrument's 1-minute candles.
// Data comes as JSON from the desk; prices are strings (exact), converted only for drawing.
//
// Times: the JSON carries true UTC epoch seconds; the chart is given them shifted to IST wall clock
// (+5:30). Lightweight Charts has no time zones: it draws every time as UTC, and its "Time zones"
// doc says to shift each timestamp by the zone's offset. That moves the axis ticks, the crosshair
// label and the day boundaries together; a tickMarkFormatter / localization.timeFormatter would only
// relabel ticks still placed on UTC days. IST has no daylight saving, so the offset is one constant.
(function () {
  var IST_OFFSET = 19800; // seconds
  var ist = function (utcSeconds) { return utcSeconds + IST_OFFSET; };
  var dark = document.documentElement.dataset.theme !== "light";
  var options = function (el) {
    // attributionLogo off: the library draws it with an inline <style>, which the CSP refuses;
    // the page credits TradingView in text under the chart instead (their licence asks for it)
    return { width: el.clientWidth, height: 280, layout: { background: { color: "transparent" }, textColor: dark ? "#d6dde6" : "#18202b",
                                                         attributionLogo: false },
             grid: { vertLines: { color: dark ? "#1b2330" : "#eef1f5" }, horzLines: { color: dark ? "#1b2330" : "#eef1f5" } },
             timeScale: { timeVisible: true, secondsVisible: false } };
  };
  var load = function (url, draw) {
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(draw);
  };
  var pnl = document.getElementById("pnl-chart");
  if (pnl) {
    var chart = LightweightCharts.createChart(pnl, options(pnl));
    var line = chart.addSeries(LightweightCharts.LineSeries, { color: "#4ea1ff", lineWidth: 2 });
    pnl.fanoutSeries = line; // the drawn series, for inspection (the browser tests read its last point)
    var refresh = function () {
      load(pnl.dataset.series, function (data) {
        line.setData(data.series.map(function (p) { return { time: ist(p.time), value: parseFloat(p.value) }; }));
        pnl.dataset.drawn = String(data.series.length);
      });
    };
    refresh();
    setInterval(refresh, 10000);
    // the day P&L above moves live over the socket: its line follows (its last point is that P&L),
    // at most once every 2 s however fast the totals come
    var pending = null;
    document.addEventListener("htmx:wsBeforeMessage", function (event) {
      if (pending || String(event.detail.message).indexOf('id="client-totals-') < 0) return;
      pending = setTimeout(function () { pending = null; refresh(); }, 2000);
    });
  }
  var candles = document.getElementById("candle-chart");
  if (candles) {
    var cchart = LightweightCharts.createChart(candles, options(candles));
    var series = cchart.addSeries(LightweightCharts.CandlestickSeries, { upColor: "#2ecc71", downColor: "#ff5c5c", borderVisible: false, wickUpColor: "#2ecc71", wickDownColor: "#ff5c5c" });
    candles.fanoutSeries = series;
    var draw = function () {
      load(candles.dataset.series, function (data) {
        series.setData(data.candles.map(function (c) {
          return { time: ist(c.time), open: parseFloat(c.open), high: parseFloat(c.high), low: parseFloat(c.low), close: parseFloat(c.close) };
        }));
      });
    };
    draw();
    setInterval(draw, 5000);
  }
})();
