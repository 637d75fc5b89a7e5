/* agglo: progressive enhancement only; every page works without it. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Progress feedback: a submitted form's buttons show that work is under way and cannot be pressed twice.
  document.querySelectorAll("form[data-busy]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var limit = parseInt(form.getAttribute("data-max-bytes") || "0", 10);
      if (limit) {
        var tooBig = Array.prototype.some.call(form.querySelectorAll("input[type=file]"), function (input) {
          return Array.prototype.some.call(input.files || [], function (f) { return f.size > limit; });
        });
        if (tooBig) {
          event.preventDefault();
          alert("Файл больше допустимого размера (" + Math.round(limit / 1048576) + " МБ).");
          return;
        }
      }
      var pressed = event.submitter;
      if (pressed && pressed.name) {
        // A disabled button is not submitted: carry its value in a hidden field.
        var carry = document.createElement("input");
        carry.type = "hidden"; carry.name = pressed.name; carry.value = pressed.value;
        form.appendChild(carry);
      }
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (b) {
          b.disabled = true;
          if (b === pressed || !pressed) { b.setAttribute("aria-busy", "true"); }
        });
      }, 0);
      form.setAttribute("aria-busy", "true");
    });
  });

  // Irreversible actions ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); event.stopImmediatePropagation(); }
    }, true);
  });

  // One-time secrets are selected on focus, ready to copy.
  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  // The menu on narrow screens.
  document.querySelectorAll("[data-toggle]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-toggle"));
    if (!target) { return; }
    button.addEventListener("click", function () {
      var open = target.classList.toggle("open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  });
})();
