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
      if (element.id === "feed-state") return; // the chip is this page's to set (below), not a socket's
      target.replaceWith(element);
      htmx.process(element);
    });
  }
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    event.preventDefault();
    var template = document.createElement("template");
    template.innerHTML = event.detail.message;
    swapAll(template.content);
    markOpen(event.detail.elt);
  });
  // body.live while every socket of the page is open (the page chrome's and the page's own):
  // polling partials (data-poll="offline") pause; when one drops they resume. Decided here, not in an
  // hx-trigger filter, which htmx would have to eval.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var element = event.detail.elt;
    if (element.dataset.poll === "offline" && document.body.classList.contains("live")) event.preventDefault();
  });
  // The chip (#feed-state) tells the truth: hidden while live; "connecting" while a socket has not
  // opened yet (after a short grace, so a quick connect shows nothing); "stale" once one has dropped.
  var open = [], dropped = [];
  function sockets() { return Array.prototype.slice.call(document.querySelectorAll("[ws-connect]")); }
  function chip(text, colour, shown) {
    var state = document.getElementById("feed-state");
    if (!state) return;
    state.hidden = !shown;
    state.textContent = text; // "live" too, while hidden: what the page knows, for whoever asks
    state.className = "chip " + colour;
  }
  function refresh() {
    var all = sockets();
    open = open.filter(function (el) { return all.indexOf(el) !== -1; }); // swapped-out sockets are gone
    dropped = dropped.filter(function (el) { return all.indexOf(el) !== -1 && open.indexOf(el) === -1; });
    var live = all.length > 0 && all.every(function (el) { return open.indexOf(el) !== -1; });
    document.body.classList.toggle("live", live);
    if (live) chip("live", "chip-green", false);
    else if (!all.length) chip("", "chip-muted", false);
    else if (dropped.length) chip("stale", "chip-red", true);
    else chip("connecting", "chip-muted", settled); // a quick connect shows nothing
  }
  var settled = false;
  // a socket counts as live from its first message (the server's snapshot, sent once it is subscribed),
  // not from the handshake: "live" means nothing published from here on is missed
  function markOpen(el) {
    if (open.indexOf(el) !== -1) return;
    open.push(el);
    dropped = dropped.filter(function (d) { return d !== el; });
    refresh();
  }
  document.addEventListener("htmx:wsClose", function (event) {
    var el = event.detail.elt;
    open = open.filter(function (o) { return o !== el; });
    if (document.body.contains(el) && dropped.indexOf(el) === -1) dropped.push(el);
    refresh();
  });
  document.addEventListener("DOMContentLoaded", function () {
    setTimeout(function () { settled = true; refresh(); }, 1500);
  });
})();
