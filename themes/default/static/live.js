// Live progress where JavaScript runs: a <progress data-progress-url="..."> asks that URL
// every second — a batch, a report or a backtest as the API answers it — shows how far it got, and
// reloads the page once it stops running. Without JavaScript the page refreshes itself.
(function () {
  "use strict";
  var bar = document.querySelector("progress[data-progress-url]");
  if (!bar) {
    return;
  }
  var label = document.querySelector("[data-progress-label]");
  var counts = document.querySelector("[data-progress-counts]");
  var status = document.querySelector("[data-progress-status]");
  // A report's status as its page words it.
  var reportStatus = { queued: "Waiting", running: "Being built" };

  // A batch: rows done of its rows, and their results.
  function showBatch(batch) {
    var done = batch.rows - batch.pending;
    bar.max = batch.rows;
    bar.value = done;
    bar.textContent = Math.floor((done * 100) / Math.max(batch.rows, 1)) + " %";
    if (label) {
      label.textContent = done + " of " + batch.rows + " rows done";
    }
    if (counts) {
      counts.textContent = batch.succeeded + " succeeded · " + batch.declined + " declined · " + batch.failed + " failed";
    }
    return batch.status === "processing";
  }

  // A report: rows written, and how far into its period they reached.
  function showReport(report) {
    bar.max = 1000;
    bar.value = Math.round(report.progress * 1000);
    bar.textContent = Math.floor(report.progress * 100) + " %";
    if (label) {
      label.textContent = report.rows_done.toLocaleString("en-GB") + " rows written";
    }
    if (status && reportStatus[report.status]) {
      status.textContent = reportStatus[report.status];
    }
    return report.status === "queued" || report.status === "running";
  }

  // A backtest: payments read of those in its period.
  function showBacktest(backtest) {
    bar.max = Math.max(backtest.total, 1);
    bar.value = backtest.scanned;
    bar.textContent = Math.floor((backtest.scanned * 100) / Math.max(backtest.total, 1)) + " %";
    if (label) {
      label.textContent = backtest.scanned.toLocaleString("en-GB") + " of " + backtest.total.toLocaleString("en-GB") + " payments read";
    }
    return backtest.status === "running";
  }

  function show(shown) {
    if ("rows_done" in shown) {
      return showReport(shown);
    }
    return "scanned" in shown ? showBacktest(shown) : showBatch(shown);
  }

  function poll() {
    fetch(bar.getAttribute("data-progress-url"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (shown) {
        if (shown) {
          var running = show(shown);
          if (!running) {
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
