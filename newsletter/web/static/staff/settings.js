// The settings page's brand colour: the colour picker and the text field show the same colour, and the
// sample button beside them follows. Without JavaScript the server takes the text field, or the picker
// when only the picker was changed.
(function () {
  "use strict";
  var text = document.getElementById("accent_colour");
  var picker = document.getElementById("accent_colour_picker");
  var swatch = document.getElementById("accent_colour-swatch");
  if (!text || !picker || !swatch) { return; }
  var colour = /^#[0-9a-fA-F]{6}$/;

  picker.addEventListener("input", function () {
    text.value = picker.value;
    swatch.style.background = picker.value;
    swatch.textContent = "Button, not saved yet";
  });
  text.addEventListener("input", function () {
    var value = text.value.trim();
    if (colour.test(value)) {
      picker.value = value.toLowerCase();
      swatch.style.background = value;
      swatch.textContent = "Button, not saved yet";
    }
  });
}());
