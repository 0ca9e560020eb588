// Small form behaviours declared in the markup (the CSP allows no inline script or on*= handlers):
// data-confirm on a form or a submit button asks before sending; data-check-all="selector" on a
// checkbox ticks or clears every box the selector matches.
(function () {
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);
  document.addEventListener("change", function (event) {
    var selector = event.target.dataset && event.target.dataset.checkAll;
    if (!selector) return;
    document.querySelectorAll(selector).forEach(function (box) { box.checked = event.target.checked; });
  });
})();
