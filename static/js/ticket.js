// The ticket's small helpers: pick an instrument, fill quantities. The server validates everything.
(function () {
  var form = document.getElementById("ticket");
  if (!form) return;
  document.getElementById("instrument-options").addEventListener("click", function (event) {
    var option = event.target.closest(".option");
    if (!option) return;
    document.getElementById("instrument_id").value = option.dataset.id;
    document.getElementById("instrument-q").value = option.firstChild.textContent.trim();
    document.getElementById("instrument-facts").textContent = option.dataset.facts;
    this.innerHTML = "";
    var exit = document.getElementById("exit-link");  // Exit goes to this instrument's holders
    if (exit) {
      exit.href = exit.dataset.template.replace(/\/0$/, "/" + option.dataset.id);
      exit.hidden = false;
    }
    htmx.trigger(form, "pick");
  });
  form.addEventListener("submit", function () {  // one click, one batch (the server checks too)
    document.getElementById("submit-ticket").disabled = true;
  });
  var rows = function () { return Array.prototype.slice.call(form.querySelectorAll("#ticket-clients tbody tr[data-capital]")); };
  var price = function () {
    var typed = parseFloat(form.querySelector("[name=price]").value);
    if (typed > 0) return typed;
    var facts = document.getElementById("instrument-facts").textContent.match(/(LTP|ref) ([\d,]+\.\d+)/);
    return facts ? parseFloat(facts[2].replace(/,/g, "")) : 0;
  };
  form.querySelectorAll("[data-fill]").forEach(function (button) {
    button.addEventListener("click", function () {
      var mode = button.dataset.fill;
      rows().forEach(function (row) {
        var qty = row.querySelector(".qty"), value = "";
        if (mode === "same") value = document.getElementById("fill-same").value;
        if (mode === "multiplier") value = (parseInt(document.getElementById("fill-base").value, 10) || 0) * (parseInt(row.querySelector(".mult").value, 10) || 0);
        if (mode === "capital") {
          var capital = parseFloat(row.dataset.capital), pct = parseFloat(document.getElementById("fill-pct").value), p = price();
          value = capital > 0 && pct > 0 && p > 0 ? Math.floor(capital * pct / 100 / p) : "";
        }
        qty.value = value;
      });
      htmx.trigger(form, "change");
    });
  });
})();
