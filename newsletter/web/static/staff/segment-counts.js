// The segments list's counts: the page is drawn with the counts made in the last few minutes; this
// asks the server for the others (GET, JSON) and fills their cells. Without JavaScript the page's
// "Show the page with every count" link loads it with every count made first.
(function () {
  "use strict";
  var table = document.getElementById("segments-table");
  if (!table) { return; }
  var note = document.getElementById("counts-note");
  fetch(table.getAttribute("data-counts-url"), {credentials: "same-origin", headers: {Accept: "application/json"}})
    .then(function (response) { return response.json(); })
    .then(function (counts) {
      table.querySelectorAll("td.count").forEach(function (cell) {
        var found = counts[cell.getAttribute("data-segment")];
        if (found) { cell.textContent = found.text; }
      });
      if (note) { note.textContent = "Counts as of now."; }
    })
    .catch(function () {
      if (note) { note.textContent = "The counts could not be made: reload the page to try again."; }
    });
})();
