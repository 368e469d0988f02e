// Review hotkeys: a key clicks the button that carries it in `data-hotkey`, so a key does
// exactly what the button does (same form, same htmx request) and the page stays the
// single source of truth for what each key means.
(function () {
  "use strict";

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  // Whether a request from the review panel is on its way; htmx fires afterRequest once the
  // answer is swapped in (or failed).
  var inFlight = false;
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target.closest && event.target.closest("#review-panel")) inFlight = true;
  });
  document.addEventListener("htmx:afterRequest", function () {
    inFlight = false;
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    // Enter in a field that names its button (the Blocked reason) clicks that button, not the
    // form's first one (which would accept the suggestion).
    if (event.key === "Enter" && event.target.dataset && event.target.dataset.enter) {
      event.preventDefault();
      var target = document.getElementById(event.target.dataset.enter);
      if (target) target.click();
      return;
    }
    if (isTyping(event.target)) return;
    var key = event.key === "Enter" ? "Enter" : event.key.toLowerCase();
    var panel = document.getElementById("review-panel");
    if (!panel) return;
    var button = panel.querySelector('[data-hotkey="' + key + '"]');
    if (!button || button.disabled) return;
    // Enter on a focused button would also click it: one decision per key press.
    event.preventDefault();
    // A decision is on its way: a second key would decide the next item blind. (Not read from
    // htmx's `htmx-request` class: the next item's panel carries it until htmx settles, ~20 ms
    // after the swap, and a quick key in that window was dropped.)
    if (inFlight) return;
    // htmx wires swapped-in content only when it settles, a few milliseconds after the swap:
    // a key pressed in between would post the form natively and reload the whole page.
    // Processing an already wired form again is a no-op.
    if (window.htmx) window.htmx.process(panel);
    if (button.tagName.toLowerCase() !== "summary") button.classList.add("is-pressed");
    button.click();
  });

  // Opening the Blocked reason puts the cursor in it; Escape closes it again.
  document.addEventListener(
    "toggle",
    function (event) {
      var details = event.target;
      if (!details.classList || !details.classList.contains("block-reason")) return;
      var field = details.querySelector("input[name=reason]");
      if (details.open && field) field.focus();
    },
    true
  );
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("#review-panel details.block-reason[open]");
    if (open) open.open = false;
  });
})();
