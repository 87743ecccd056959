// The segment builder's live count: when the form changes, wait a moment, then POST it (with the
// CSRF token; the definition may hold values that do not belong in a URL; nothing is changed) and
// show the count and the first contacts. Without JavaScript the Count button does the same by
// sending the form.
(function () {
  "use strict";
  var form = document.getElementById("segment-form");
  if (!form) { return; }
  var url = form.getAttribute("data-count-url");
  var count = document.getElementById("segment-count");
  var sample = document.getElementById("segment-sample");
  var hints = JSON.parse(form.getAttribute("data-hints") || "{}");
  var text = document.getElementById("definition");
  var timer = null;
  var asked = 0;

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function showSample(contacts) {
    while (sample.firstChild) { sample.removeChild(sample.firstChild); }
    contacts.forEach(function (contact) {
      var row = document.createElement("tr");
      cell(row, String(contact.id));
      cell(row, contact.email);
      cell(row, contact.name);
      sample.appendChild(row);
    });
  }

  function problem(body) {
    var messages = [];
    Object.keys(body.errors || {}).forEach(function (index) {
      messages.push("Condition " + (Number(index) + 1) + ": " + body.errors[index]);
    });
    if (body.error) { messages.push(body.error); }
    return messages.join(" ") || "The segment is not valid yet.";
  }

  function update() {
    var mine = ++asked;  // a slow answer to an older form must not overwrite a newer one
    var data = new FormData(form);
    data.set("action", "count");
    count.textContent = "counting…";
    fetch(url, {method: "POST", body: data, credentials: "same-origin",
                headers: {Accept: "application/json", "X-CSRF-Token": data.get("csrf_token")}})
      .then(function (response) {
        return response.json().then(function (body) { return {ok: response.ok, body: body}; });
      })
      .then(function (answer) {
        if (mine !== asked) { return; }
        if (answer.ok) {
          count.textContent = answer.body.text;
          if (form.elements.namedItem("mode").value === "rows") { text.value = answer.body.definition; }
          showSample(answer.body.sample);
        } else {
          count.textContent = problem(answer.body);
          showSample([]);
        }
      })
      .catch(function () {
        if (mine === asked) { count.textContent = "The count could not be updated: press Count."; }
      });
  }

  function later() {
    if (timer) { window.clearTimeout(timer); }
    timer = window.setTimeout(update, 400);
  }

  // The value's hint follows the condition chosen.
  form.addEventListener("change", function (event) {
    var match = /^kind-(\d+)$/.exec(event.target.id || "");
    var hint = match && document.getElementById("value-" + match[1] + "-hint");
    if (hint) { hint.textContent = hints[event.target.value] || ""; }
  });
  form.addEventListener("input", function (event) {
    if (event.target !== text) { later(); }
  });
  text.addEventListener("input", function () {
    document.getElementById("mode-text").checked = true;  // typing the text means using it
    later();
  });
  form.addEventListener("change", later);
  if (form.hasAttribute("data-count-on-load")) { update(); }
})();
