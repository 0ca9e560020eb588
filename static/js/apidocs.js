// The API docs page (/api/v1/docs): Swagger UI over this desk's OpenAPI document. "Authorize" takes an
// API key (from your account page); "Try it out" then calls the API with it.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    persistAuthorization: false,
  });
});
