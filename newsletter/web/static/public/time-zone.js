// The consultation form's time zone: the browser's own zone (Intl) in place of the clinic's default,
// on a fresh form only (never over what the person typed or a value sent back with an error). The
// field stays editable; without JavaScript it keeps the clinic's default.
(function () {
  "use strict";
  var field = document.getElementById("timezone");
  if (!field || field.getAttribute("data-guess") !== "yes" || !window.Intl || !Intl.DateTimeFormat) { return; }
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (typeof zone === "string" && /^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone) && field.value === field.defaultValue) {
    field.value = zone;
  }
}());
