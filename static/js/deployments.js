// The deployment form's small helpers: add instruments from the search as chips, remove them, select
// every client. The server validates everything.
(function () {
  var form = document.getElementById("deployment-form");
  if (!form) return;
  var chosen = document.getElementById("chosen-instruments");
  document.getElementById("instrument-options").addEventListener("click", function (event) {
    var option = event.target.closest(".option");
    if (!option) return;
    var id = option.dataset.id;
    if (!chosen.querySelector('[data-id="' + id + '"]')) {
      var chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.id = id;
      chip.textContent = option.firstChild.textContent.trim();
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "instrument_ids";
      input.value = id;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "ghost remove";
      remove.textContent = "×";
      chip.appendChild(input);
      chip.appendChild(document.createTextNode(" "));
      chip.appendChild(remove);
      chosen.appendChild(chip);
    }
    this.innerHTML = "";
    document.getElementById("instrument-q").value = "";
  });
  chosen.addEventListener("click", function (event) {
    if (event.target.classList.contains("remove")) event.target.closest(".chip").remove();
  });
  var all = document.getElementById("all-clients");
  if (all) all.addEventListener("change", function () {
    form.querySelectorAll("input[name=clients]").forEach(function (box) { box.checked = all.checked; });
  });
  form.addEventListener("submit", function () { document.getElementById("save-deployment").disabled = true; });
})();
