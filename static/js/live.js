// The live feed's state: body.live while the WebSocket is open (polling partials pause), and a
// visible "stale" when it drops (they resume). The htmx ws extension reconnects by itself.
document.addEventListener("htmx:wsOpen", function () {
  document.body.classList.add("live");
});
document.addEventListener("htmx:wsClose", function () {
  document.body.classList.remove("live");
  var state = document.getElementById("feed-state");
  if (state) { state.textContent = "stale"; state.className = "chip chip-red"; }
});
