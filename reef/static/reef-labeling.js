// Keyboard shortcuts of the labeling page: 1-9 choose a label, arrows move, s skips, u or
// Ctrl+Z undoes. Each key clicks the matching button of #label-item (htmx does the rest);
// keys are ignored while typing in a field or while the item is still loading or settling.
(function () {
  "use strict";
  var NAV = { ArrowLeft: "prev", ArrowRight: "next", s: "skip", u: "undo" };

  function press(selector) {
    var item = document.getElementById("label-item");
    if (!item || item.querySelector(".htmx-request")) return false;
    // just swapped in: htmx has not wired its buttons until it settles
    if (item.classList.contains("htmx-added") || item.classList.contains("htmx-settling")) {
      return false;
    }
    var button = item.querySelector(selector);
    if (!button || button.disabled) return false;
    button.click();
    return true;
  }

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (e.altKey || e.metaKey) return;
    var done = false;
    if (e.ctrlKey) {
      if (e.key === "z" || e.key === "Z") done = press('[data-nav="undo"]');
    } else if (/^[1-9]$/.test(e.key)) {
      done = press('[data-key="' + e.key + '"]');
    } else if (NAV[e.key]) {
      done = press('[data-nav="' + NAV[e.key] + '"]');
    }
    if (done) e.preventDefault();
  });
})();
