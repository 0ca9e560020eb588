// The order book. Its rows refresh while the socket is down by re-fetching #book-results every few
// seconds; that would wipe a modify form someone is filling in, so the refresh waits while one is
// open (decided here: htmx may not evaluate a filter expression under the page's CSP).
(function () {
  document.addEventListener("htmx:beforeRequest", function (event) {
    var element = event.detail.elt;
    if (element.id !== "book-results" || element.dataset.poll !== "offline") return;
    if (element.querySelector("details.order-modify[open]")) event.preventDefault();
  });
})();
