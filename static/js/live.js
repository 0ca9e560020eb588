// The live feed. The htmx ws extension keeps the socket (and reconnects with backoff); the
// fragments are swapped here, by id, like htmx's out-of-band swaps — including table rows, which
// arrive wrapped in <template> because a bare <tr> does not survive HTML parsing elsewhere.
(function () {
  function swapAll(root) {
    Array.prototype.slice.call(root.children).forEach(function (element) {
      if (element.tagName === "TEMPLATE") { swapAll(element.content); return; }
      var toasts = element.hasAttribute("data-toast") && document.getElementById("toasts");
      if (toasts) { toasts.appendChild(element); htmx.process(element); return; }  // toasts stack (notify.js)
      var target = element.id && document.getElementById(element.id);
      if (!target) return;
      element.removeAttribute("hx-swap-oob");
      if (target.hidden && element.id === "feed-state") element.hidden = false;
      target.replaceWith(element);
      htmx.process(element);
    });
  }
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    event.preventDefault();
    var template = document.createElement("template");
    template.innerHTML = event.detail.message;
    swapAll(template.content);
  });
  // body.live while the socket is open: polling partials (data-poll="offline") pause; "stale" when
  // it drops (they resume). Decided here, not in an hx-trigger filter, which htmx would have to eval.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var element = event.detail.elt;
    if (element.dataset.poll === "offline" && document.body.classList.contains("live")) event.preventDefault();
  });
  document.addEventListener("htmx:wsOpen", function () { document.body.classList.add("live"); });
  document.addEventListener("htmx:wsClose", function () {
    document.body.classList.remove("live");
    var state = document.getElementById("feed-state");
    if (state) { state.hidden = false; state.textContent = "stale"; state.className = "chip chip-red"; }
  });
})();
