// Hotkeys (listed on the "?" overlay, templates/watch/_hotkeys.html). Keys typed into a field are the
// field's: only Esc is read there (it closes the market watch's results and leaves the field).
//   B / S   the ticket for the focused instrument (a market-watch row, or the instrument page's own)
//   /       the market watch's search          1-5  market watch list 1..5
//   ?       this list                          Esc  close results, overlay, menus; blur
(function () {
  function typing(element) {
    if (!element || element === document.body) return false;
    if (element.isContentEditable) return true;
    var tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    return ["button", "submit", "reset", "checkbox", "radio"].indexOf(element.type) === -1;
  }

  // the instrument B / S act on: the focused market-watch row, else the page's own instrument
  function focusedInstrument() {
    var active = document.activeElement;
    var row = active && active.closest && active.closest(".mw-row");
    return row || document.querySelector("[data-hotkey-instrument]");
  }

  function help() { return document.getElementById("hotkeys-help"); }

  function openHelp() {
    var dialog = help();
    if (dialog && !dialog.open) dialog.showModal();
  }

  function escape() {
    if (window.fanoutWatch) window.fanoutWatch.closeResults();
    document.querySelectorAll("details.menu[open]").forEach(function (menu) { menu.open = false; });
    var dialog = help();
    if (dialog && dialog.open) dialog.close();
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  }

  function showList(n) {
    var tab = document.getElementById("mw-tab-" + n);
    // asked of htmx directly, not by a click: a tab swapped in a moment ago may not be processed yet,
    // and its click would follow the plain link to the full-page list instead
    if (tab && !tab.classList.contains("active")) {
      htmx.ajax("GET", tab.getAttribute("hx-get"), { target: "#market-watch", swap: "outerHTML" });
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Escape") {
      var dialog = help();
      if (dialog && dialog.open) return; // the dialog closes itself on Esc (and gives focus back)
      escape();
      return;
    }
    if (typing(event.target)) return;
    var key = event.key;
    if (key === "?") {
      openHelp();
    } else if (key === "/") {
      var search = document.getElementById("mw-search");
      if (!search) return;
      if (window.fanoutWatch && window.fanoutWatch.isCollapsed()) window.fanoutWatch.open();
      search.focus();
      search.select();
    } else if (key === "b" || key === "B" || key === "s" || key === "S") {
      var instrument = focusedInstrument();
      var url = instrument && (key.toLowerCase() === "b" ? instrument.dataset.buy : instrument.dataset.sell);
      if (!url) return; // nothing focused, an index, or a role that places no orders
      window.location.assign(url);
    } else if (/^[1-5]$/.test(key)) {
      showList(key);
    } else {
      return;
    }
    event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("#hotkeys-open")) openHelp();
  });
})();
