// engramdb web page: the little script it uses (served from this origin; the CSP allows no
// inline script). Pages work without it.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) return;
  field.select();
  if (navigator.clipboard) {
    navigator.clipboard.writeText(field.value).then(function () { button.textContent = "Copied"; });
  }
});
