// The home page's "Sending now": every few seconds, ask each send's progress (GET, JSON, the same
// endpoint as the Send page) and update its bar and its sentence, which is an aria-live="polite"
// region. Stops asking about a send once it is over. Without JavaScript the figures are those the
// page was drawn with.
(function () {
  "use strict";
  var items = Array.prototype.slice.call(document.querySelectorAll("li.sending[data-progress-url]"));
  if (!items.length) { return; }
  var number = new Intl.NumberFormat();

  function poll(item) {
    fetch(item.getAttribute("data-progress-url"), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (figures) {
        if (!figures) { return; }
        var bar = item.querySelector("progress");
        bar.max = figures.recipients || 1;
        bar.value = figures.recipients ? figures.handled : 0;
        var text = number.format(figures.handled) + " of " + number.format(figures.recipients) + " handled (" +
          figures.percent + "%) · " + String(figures.label).replace(/_/g, " ");
        var sentence = item.querySelector(".progress-text");
        if (sentence.textContent !== text) { sentence.textContent = text; }
        if (figures.live) { window.setTimeout(function () { poll(item); }, 3000); }
      })
      .catch(function () { window.setTimeout(function () { poll(item); }, 10000); });
  }

  items.forEach(function (item) { window.setTimeout(function () { poll(item); }, 3000); });
})();
