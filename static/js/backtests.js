// A backtest's equity and drawdown curves (lightweight-charts). The series come as JSON with times
// already in IST wall-clock seconds (the library draws a time as UTC), so the axis reads IST.
(function () {
  var equityEl = document.getElementById("equity-chart");
  var drawdownEl = document.getElementById("drawdown-chart");
  if (!equityEl || !window.LightweightCharts) return;
  var dark = document.documentElement.dataset.theme !== "light";
  var options = function (el, height) {
    // attributionLogo off: the library draws it with an inline <style>, which the CSP refuses;
    // the page credits TradingView in text under the chart instead
    return { width: el.clientWidth, height: height,
             layout: { background: { color: "transparent" }, textColor: dark ? "#d6dde6" : "#18202b", attributionLogo: false },
             grid: { vertLines: { color: dark ? "#1b2330" : "#eef1f5" }, horzLines: { color: dark ? "#1b2330" : "#eef1f5" } },
             timeScale: { timeVisible: true, secondsVisible: false } };
  };
  var equityChart = LightweightCharts.createChart(equityEl, options(equityEl, 300));
  var equity = equityChart.addSeries(LightweightCharts.LineSeries, { color: "#4ea1ff", lineWidth: 2 });
  var drawdownChart = drawdownEl ? LightweightCharts.createChart(drawdownEl, options(drawdownEl, 160)) : null;
  var drawdown = drawdownChart ? drawdownChart.addSeries(LightweightCharts.AreaSeries, {
    lineColor: "#ff5c5c", topColor: "rgba(255, 92, 92, 0.05)", bottomColor: "rgba(255, 92, 92, 0.4)", lineWidth: 1 }) : null;
  fetch(equityEl.dataset.series, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
    equity.setData(data.equity);
    equityChart.timeScale().fitContent();
    if (drawdown) { drawdown.setData(data.drawdown); drawdownChart.timeScale().fitContent(); }
    equityEl.dataset.points = String(data.equity.length);  // the browser test reads how many were drawn
  });
})();
