// Starts Swagger UI on /schema (a file, not an inline script: reef's CSP runs no inline code).
// Requests made from it carry the CSRF cookie's token, as the pages' forms do.
(function () {
  "use strict";
  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : undefined;
  }
  const container = document.getElementById("swagger-container");
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: "#swagger-container",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: function (request) {
      const token = csrfToken();
      if (token !== undefined) request.headers["x-csrftoken"] = token;
      return request;
    },
  });
})();
