// The hosted page's help while typing: the card number in groups of four, a hint when
// it cannot be a card number (the Luhn check), the expiry's slash. The server checks
// everything again; the page works without this script.
(function () {
  "use strict";
  var number = document.getElementById("card_number");
  var hint = document.getElementById("card_hint");
  var expiry = document.getElementById("expiry");
  function luhn(digits) {
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = +digits[digits.length - 1 - i];
      if (i % 2) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return sum % 10 === 0;
  }
  if (number) {
    number.addEventListener("input", function () {
      var digits = number.value.replace(/\D/g, "").slice(0, 19);
      number.value = digits.replace(/(\d{4})(?=\d)/g, "$1 ");
      hint.textContent = "";
    });
    number.addEventListener("blur", function () {
      var digits = number.value.replace(/\D/g, "");
      hint.textContent = digits.length >= 12 && !luhn(digits) ? (document.documentElement.lang === "de"
        ? "Diese Kartennummer scheint falsch zu sein." : "This card number looks mistyped.") : "";
    });
  }
  if (expiry) {
    expiry.addEventListener("input", function (event) {
      var digits = expiry.value.replace(/\D/g, "").slice(0, 4);
      if (event.inputType !== "deleteContentBackward" && digits.length >= 2) {
        expiry.value = digits.slice(0, 2) + "/" + digits.slice(2);
      } else {
        expiry.value = digits;
      }
    });
  }
})();
