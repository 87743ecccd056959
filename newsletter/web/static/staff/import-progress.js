// The contacts import's progress: ask the server how far the import is (GET, JSON) every two
// seconds and move the bar; when it is done, load the page again to show the report. Without
// JavaScript a <meta refresh> inside <noscript> reloads the page, and a Reload link is there.
(function () {
  "use strict";
  var panel = document.getElementById("import-progress");
  if (!panel || panel.getAttribute("data-done") === "yes") { return; }
  var url = panel.getAttribute("data-progress-url");
  var bar = document.getElementById("import-bar");
  var rows = document.getElementById("import-rows");

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.json(); })
      .then(function (body) {
        bar.max = body.rows_total || 1;
        bar.value = body.rows_done;
        rows.textContent = body.rows_done + " of " + body.rows_total + " rows done";
        if (body.done) { window.location.reload(); } else { window.setTimeout(poll, 2000); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
