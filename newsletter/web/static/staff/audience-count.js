// The Send page's live audience count. When the list or segment changes, ask the server for the new
// count (GET, JSON) and keep the schedule and send-now forms' hidden choice in step with the selects.
// Without JavaScript the "Update count" button does the same by loading the page again.
(function () {
  "use strict";
  var form = document.getElementById("audience-form");
  if (!form) { return; }
  var url = form.getAttribute("data-count-url");
  var count = document.getElementById("audience-count");
  var list = form.elements.namedItem("list");
  var segment = form.elements.namedItem("segment");
  var asked = 0;

  function show(text) {
    if (count.textContent !== text) { count.textContent = text; }
    document.querySelectorAll(".audience-summary").forEach(function (node) { node.textContent = text; });
  }

  function keepChoice() {
    document.querySelectorAll("input[data-audience=list]").forEach(function (input) { input.value = list.value; });
    document.querySelectorAll("input[data-audience=segment]").forEach(function (input) { input.value = segment.value; });
  }

  function update() {
    var mine = ++asked;  // a slow answer to an older choice must not overwrite a newer one
    keepChoice();
    show("counting…");
    var query = new URLSearchParams({list: list.value, segment: segment.value});
    fetch(url + "?" + query.toString(), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        return response.json().then(function (body) { return {ok: response.ok, body: body}; });
      })
      .then(function (answer) {
        if (mine === asked) { show(answer.ok ? answer.body.text : answer.body.error); }
      })
      .catch(function () {
        if (mine === asked) { show("the count could not be updated: press Update count"); }
      });
  }

  list.addEventListener("change", update);
  segment.addEventListener("change", update);
})();
