// The designer's live preview: as the form changes, the preview frames show the page
// with what it holds (not saved). Without this script, the Preview buttons do the same.
(function () {
  "use strict";
  var form = document.getElementById("design-form");
  if (!form) return;
  var buttons = form.querySelectorAll("[data-preview]");
  var timer = null;
  function refresh() {
    for (var i = 0; i < buttons.length; i++) form.requestSubmit(buttons[i]);
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  }
  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
