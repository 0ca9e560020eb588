// The market watch beside every page (templates/watch/_market_watch.html): collapse, keyboard
// movement through its rows and search results, and the header's menus. The hotkeys that act on a
// row (B / S, "/", "?") are in hotkeys.js; both read the rows' data-href / data-buy / data-sell.
(function () {
  var COOKIE = "fanout-mw";

  function watch() { return document.getElementById("market-watch"); }
  function rows() {
    var list = document.getElementById("mw-list");
    return list ? Array.prototype.slice.call(list.querySelectorAll(".mw-row")) : [];
  }
  function hits() {
    var found = document.getElementById("mw-found");
    return found ? Array.prototype.slice.call(found.querySelectorAll(".mw-add")) : [];
  }

  // one row in the tab order at a time (roving tabindex): Tab enters the list at the row last used
  function focusRow(row) {
    rows().forEach(function (r) { r.tabIndex = r === row ? 0 : -1; });
    row.focus();
  }

  function closeResults() {
    var results = document.getElementById("mw-results");
    if (results) results.innerHTML = "";
  }

  // collapsed now? (below 1280 px the column starts collapsed by CSS unless the trader opened it)
  function isCollapsed() {
    var aside = watch();
    return !!aside && aside.getBoundingClientRect().width < 60;
  }

  function setCollapsed(collapsed) {
    var aside = watch();
    if (!aside) return;
    aside.classList.toggle("collapsed", collapsed);
    aside.classList.toggle("opened", !collapsed);
    markExpanded();
    // a cookie, not localStorage: the server draws the column as chosen on the next page (no flash)
    document.cookie = COOKIE + "=" + (collapsed ? "collapsed" : "open") + "; path=/; max-age=31536000; SameSite=Lax";
  }

  function markExpanded() {
    var toggle = document.getElementById("mw-toggle");
    if (toggle) toggle.setAttribute("aria-expanded", isCollapsed() ? "false" : "true");
  }
  document.addEventListener("DOMContentLoaded", markExpanded);
  window.addEventListener("resize", markExpanded);

  document.addEventListener("click", function (event) {
    if (event.target.closest("#mw-toggle")) {
      setCollapsed(!isCollapsed());
      return;
    }
    // a click outside an open menu closes it; outside the search, its results go
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.open = false;
    });
    if (!event.target.closest(".mw-head, #mw-results")) closeResults();
  });

  // a row's hover and focus show its Buy / Sell: the row itself is what the keyboard moves through
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var target = event.target;
    var row = target.closest && target.closest(".mw-row");
    if (row && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      var all = rows(), at = all.indexOf(row);
      var next = all[at + (event.key === "ArrowDown" ? 1 : -1)];
      if (next) focusRow(next);
      event.preventDefault();
    } else if (row && event.key === "Enter" && target === row) {
      window.location.assign(row.dataset.href);
      event.preventDefault();
    } else if (target.id === "mw-search" && event.key === "ArrowDown") {
      var first = hits()[0] || rows()[0];
      if (first) { first.closest(".mw-row") ? focusRow(first) : first.focus(); }
      event.preventDefault();
    } else if (target.classList && target.classList.contains("mw-add") &&
               (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      var buttons = hits(), i = buttons.indexOf(target);
      var to = buttons[i + (event.key === "ArrowDown" ? 1 : -1)];
      if (to) to.focus();
      else if (event.key === "ArrowUp") document.getElementById("mw-search").focus();
      event.preventDefault();
    }
  });

  // after a swap (list switched, instrument added or removed) the keyboard stays in the watch
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "market-watch") {
      var search = document.getElementById("mw-search");
      var added = event.detail.requestConfig && event.detail.requestConfig.verb === "post";
      if (added && search) search.focus();
    }
  });

  window.fanoutWatch = { rows: rows, focusRow: focusRow, closeResults: closeResults, isCollapsed: isCollapsed,
    open: function () { setCollapsed(false); } };
})();
