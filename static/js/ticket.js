// The ticket's small helpers: pick an instrument, fill quantities, name the side and total on the button,
// fill the limit price from a depth click. The server validates everything.
(function () {
  var form = document.getElementById("ticket");
  if (!form) return;
  var search = document.getElementById("instrument-q");
  var picked = document.getElementById("instrument_id");
  var submit = document.getElementById("submit-ticket");

  // Typing in the search is not editing the order: no preview (and no verdicts) until a pick.
  // Editing the search text un-picks the instrument, so what the ticket names is what was chosen.
  ["input", "change"].forEach(function (type) {
    search.addEventListener(type, function (event) {
      event.stopPropagation();
      if (type === "input" && picked.value && search.value.trim() !== picked.dataset.symbol) {
        picked.value = "";
        picked.dataset.symbol = "";
        document.getElementById("instrument-facts").textContent = "";
        updateButton();
      }
    });
  });

  document.getElementById("instrument-options").addEventListener("click", function (event) {
    var option = event.target.closest(".option");
    if (!option) return;
    var symbol = option.firstChild.textContent.trim();
    picked.value = option.dataset.id;
    picked.dataset.symbol = symbol;
    search.value = symbol;
    document.getElementById("instrument-facts").textContent = option.dataset.facts;
    this.innerHTML = "";
    var exit = document.getElementById("exit-link");  // Exit goes to this instrument's holders
    if (exit) {
      exit.href = exit.dataset.template.replace(/\/0$/, "/" + option.dataset.id);
      exit.hidden = false;
    }
    updateButton();
    htmx.trigger(form, "pick");
  });

  form.addEventListener("submit", function () {  // one click, one batch (the server checks too)
    submit.disabled = true;
  });

  var rows = function () {
    return Array.prototype.slice.call(form.querySelectorAll("#ticket-clients tbody tr[data-capital]"));
  };
  var killed = function (row) { return row.querySelector("td.killed") !== null; };
  var price = function () {
    var typed = parseFloat(form.querySelector("[name=price]").value);
    if (typed > 0) return typed;
    var live = document.getElementById("quote-ltp");
    if (live && parseFloat(live.dataset.price) > 0) return parseFloat(live.dataset.price);
    var facts = document.getElementById("instrument-facts").textContent.match(/(LTP|ref) ₹?([\d,]+\.\d+)/);
    return facts ? parseFloat(facts[2].replace(/,/g, "")) : 0;
  };

  // "Buy 1,200 RELIANCE for 12 clients": the side, the total and the count of clients with a quantity
  // (a client whose kill switch is on is refused, so it is not counted).
  function updateButton() {
    if (submit.dataset.deskKill) return;  // the desk kill switch: the button says so and stays off
    var checked = form.querySelector("input[name=action]:checked");
    var side = checked && checked.value === "SELL" ? "SELL" : "BUY";
    var total = 0, count = 0;
    rows().forEach(function (row) {
      var qty = parseInt(row.querySelector(".qty").value, 10);
      if (qty > 0 && !killed(row)) { total += qty; count += 1; }
    });
    var symbol = picked.value ? picked.dataset.symbol : "";
    var verb = side === "SELL" ? "Sell" : "Buy";
    var text;
    if (!symbol) text = verb + ": choose an instrument";
    else if (!total) text = verb + " " + symbol + ": enter quantities";
    else text = verb + " " + total.toLocaleString("en-IN") + " " + symbol + " for " + count + (count === 1 ? " client" : " clients");
    submit.textContent = text;
    submit.classList.toggle("side-buy", side === "BUY");
    submit.classList.toggle("side-sell", side === "SELL");
  }
  form.addEventListener("input", updateButton);
  form.addEventListener("change", updateButton);

  form.querySelectorAll("[data-fill]").forEach(function (button) {
    button.addEventListener("click", function () {
      var mode = button.dataset.fill;
      rows().forEach(function (row) {
        if (killed(row)) return;  // its orders are refused: leave its quantity as the trader set it
        var qty = row.querySelector(".qty"), value = "";
        if (mode === "same") value = document.getElementById("fill-same").value;
        if (mode === "multiplier") value = (parseInt(document.getElementById("fill-base").value, 10) || 0) * (parseInt(row.querySelector(".mult").value, 10) || 0);
        if (mode === "capital") {  // % of the client's available margin, as deployments size by capital
          var margin = parseFloat(row.dataset.capital), pct = parseFloat(document.getElementById("fill-pct").value), p = price();
          value = margin > 0 && pct > 0 && p > 0 ? Math.floor(margin * pct / 100 / p) : "";
        }
        qty.value = value;
      });
      updateButton();
      htmx.trigger(form, "change");
    });
  });

  // A depth price is the limit price: clicking one makes the order a LIMIT at that price.
  document.getElementById("ticket-quote").addEventListener("click", function (event) {
    var level = event.target.closest(".depth-price");
    if (!level) return;
    var orderType = document.getElementById("order_type");
    if (orderType.value === "MARKET") orderType.value = "LIMIT";
    var field = form.querySelector("[name=price]");
    field.value = level.dataset.price;
    field.focus();
    htmx.trigger(form, "change");
  });

  updateButton();
})();
