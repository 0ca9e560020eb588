// Toasts (notify/_toast.html arrive on the page-chrome socket and live.js appends them to #toasts):
// each dismisses itself after a while or by its ×; optional sound (a short tone made here, no file) and
// browser notification while the tab is in the background, as the user chose in their settings.
(function () {
  var SHOW_MS = 8000;
  var MAX_SHOWN = 5; // a 50-client batch filling at once: the newest five stay, the page keeps every one
  var BURST_MS = 1500; // one sound and one browser notification for toasts arriving together
  var audio = null, burst = [], burstTimer = null;

  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.15);
    } catch (e) { /* no audio: the toast still shows */ }
  }

  function dismiss(toast) {
    toast.classList.add("leaving");
    setTimeout(function () { toast.remove(); }, 250);
  }

  function arrived(box, toast) {
    var close = toast.querySelector(".toast-close");
    if (close) close.addEventListener("click", function () { dismiss(toast); });
    var timer = setTimeout(function () { dismiss(toast); }, SHOW_MS);
    toast.addEventListener("mouseenter", function () { clearTimeout(timer); });
    toast.addEventListener("mouseleave", function () { timer = setTimeout(function () { dismiss(toast); }, SHOW_MS); });
    var shownNow = box.querySelectorAll(".toast:not(.leaving)");
    for (var i = 0; i < shownNow.length - MAX_SHOWN; i++) dismiss(shownNow[i]);
    burst.push(toast);
    if (!burstTimer) burstTimer = setTimeout(function () { announce(box); }, BURST_MS);
  }

  function announce(box) {
    var toasts = burst;
    burst = []; burstTimer = null;
    if (!toasts.length) return;
    if (box.dataset.sound === "1") beep();
    if (box.dataset.browser !== "1" || !document.hidden || !("Notification" in window) ||
        Notification.permission !== "granted") return;
    var last = toasts[toasts.length - 1], link = last.querySelector("a");
    var title = toasts.length > 1 ? toasts.length + " notifications · Fanout" : last.dataset.title || "Fanout";
    var shown = new Notification(title, { body: (toasts.length > 1 ? last.dataset.title + ": " : "") + (last.dataset.body || "") });
    shown.onclick = function () { window.focus(); if (link) window.location.href = link.href; };
  }

  function permissionButton() {
    var button = document.getElementById("notify-permission");
    var state = document.getElementById("notify-permission-state");
    if (!button || !("Notification" in window)) {
      if (state) state.textContent = "This browser has no notifications.";
      return;
    }
    function show() {
      button.hidden = Notification.permission !== "default";
      if (state) state.textContent = Notification.permission === "denied" ? "Blocked in this browser's site settings." :
        Notification.permission === "granted" ? "This browser may show them." : "";
    }
    button.addEventListener("click", function () { Notification.requestPermission().then(show); });
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    permissionButton();
    var box = document.getElementById("toasts");
    if (!box) return;
    new MutationObserver(function (changes) {
      changes.forEach(function (change) {
        change.addedNodes.forEach(function (node) {
          if (node.nodeType === 1 && node.classList.contains("toast")) arrived(box, node);
        });
      });
    }).observe(box, { childList: true });
  });
})();
