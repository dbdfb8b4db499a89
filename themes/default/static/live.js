// Live progress where JavaScript runs: a <progress data-progress-url="..."> asks that URL
// (a batch as the API answers it) every second, shows the rows done, and reloads the page
// once the batch stops running. Without JavaScript the page refreshes itself instead.
(function () {
  "use strict";
  var bar = document.querySelector("progress[data-progress-url]");
  if (!bar) {
    return;
  }
  var label = document.querySelector("[data-progress-label]");
  var counts = document.querySelector("[data-progress-counts]");
  function poll() {
    fetch(bar.getAttribute("data-progress-url"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (batch) {
        if (batch) {
          var done = batch.rows - batch.pending;
          bar.max = batch.rows;
          bar.value = done;
          bar.textContent = Math.floor((done * 100) / Math.max(batch.rows, 1)) + " %";
          if (label) {
            label.textContent = done + " of " + batch.rows + " rows done";
          }
          if (counts) {
            counts.textContent =
              batch.succeeded + " succeeded · " + batch.declined + " declined · " + batch.failed + " failed";
          }
          if (batch.status !== "processing") {
            window.location.reload();
            return;
          }
        }
        window.setTimeout(poll, 1000);
      })
      .catch(function () {
        window.setTimeout(poll, 1000);
      });
  }
  window.setTimeout(poll, 1000);
})();
