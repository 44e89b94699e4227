// Behaviour shared by reef's pages, kept out of the templates (the CSP runs no inline code).
(function () {
  "use strict";
  // Upload progress: the import form's <progress id="progress"> follows the upload.
  document.addEventListener("htmx:xhr:progress", function (event) {
    const bar = document.getElementById("progress");
    if (bar && event.detail.total) bar.value = (100 * event.detail.loaded) / event.detail.total;
  });
  // The pipeline builder redraws on every change except picking the module to add (that
  // waits for "Add step"): stop that one change before it reaches the form.
  document.addEventListener(
    "change",
    function (event) {
      if (event.target.id === "builder-module") event.stopPropagation();
    },
    true,
  );
})();
