// Dark / light theme, remembered per browser. Runs before paint to avoid a flash.
(function () {
  var saved = localStorage.getItem("fanout-theme");
  if (saved) document.documentElement.dataset.theme = saved;
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", function () {
      var next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("fanout-theme", next);
    });
  });
})();
