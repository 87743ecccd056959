// Live progress of an issue's send. While the send can still change (data-live), ask the server every
// few seconds (GET, JSON) and update the counts, the <progress> bar and the one-sentence summary, which
// is an aria-live="polite" region: a screen reader hears it when it changes, not on every poll.
// Without JavaScript the page shows the figures as they were when it loaded.
(function () {
  "use strict";
  var section = document.getElementById("progress");
  if (!section || section.getAttribute("data-live") !== "true") { return; }
  var url = section.getAttribute("data-url");
  var every = (Number(section.getAttribute("data-every")) || 3) * 1000;
  var bar = document.getElementById("progress-bar");
  var summary = document.getElementById("progress-summary");

  function sentence(figures) {
    var state = "State: " + String(figures.label).replace(/_/g, " ") + ".";
    if (!figures.recipients) { return "Nothing is queued yet. " + state; }
    return figures.handled + " of " + figures.recipients + " handled (" + figures.percent + "%), " +
      figures.waiting + " waiting. " + state + (figures.live ? "" : " Load the page again for what you can do next.");
  }

  function draw(figures) {
    bar.max = figures.recipients || 1;
    bar.value = figures.recipients ? figures.handled : 0;
    bar.textContent = figures.percent + "%";
    section.querySelectorAll("[data-count]").forEach(function (cell) {
      var value = String(figures.counts[cell.getAttribute("data-count")] || 0);
      if (cell.textContent !== value) { cell.textContent = value; }
    });
    var text = sentence(figures);
    if (summary.textContent !== text) { summary.textContent = text; }
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (figures) {
        draw(figures);
        if (figures.live) { window.setTimeout(poll, every); }
      })
      .catch(function () { window.setTimeout(poll, every * 2); });  // a hiccup: try again, less often
  }

  window.setTimeout(poll, every);
})();
