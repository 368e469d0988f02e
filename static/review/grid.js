// Grid review: select cards with the mouse or the keyboard, then confirm their suggestions or
// set one rating for them, behind one confirm step. The page holds its items while it is open:
// leaving it (not by one of its own forms) sends a beacon that gives the undecided ones back.
(function () {
  "use strict";

  var root = document.getElementById("grid-review");
  var dialog = document.getElementById("grid-confirm");
  if (!root || !dialog) return; // no page loaded yet: the filters alone, nothing to select
  var cards = Array.prototype.slice.call(root.querySelectorAll(".grid-card"));
  var decide = document.getElementById("grid-decide");
  var selected = new Set();
  var focus = 0;
  var anchor = null; // where a shift range starts
  var base = new Set(); // the selection before the range was started
  var pending = null; // the action waiting for the dialog's answer
  var leaving = true; // false once one of the page's own forms is submitted

  function render() {
    cards.forEach(function (card, i) {
      var on = selected.has(i);
      card.classList.toggle("is-selected", on);
      card.setAttribute("aria-selected", on ? "true" : "false");
    });
    var count = document.getElementById("grid-selected");
    if (count) count.textContent = String(selected.size);
  }

  function moveFocus(i) {
    if (!cards.length) return;
    focus = Math.max(0, Math.min(cards.length - 1, i));
    cards.forEach(function (card, j) {
      card.tabIndex = j === focus ? 0 : -1;
    });
    cards[focus].focus();
  }

  function columns() {
    if (cards.length < 2) return 1;
    var top = cards[0].offsetTop;
    var n = 0;
    while (n < cards.length && cards[n].offsetTop === top) n++;
    return Math.max(1, n);
  }

  function selectRange(from, to) {
    selected = new Set(base);
    var lo = Math.min(from, to);
    var hi = Math.max(from, to);
    for (var i = lo; i <= hi; i++) selected.add(i);
  }

  function toggle(i) {
    if (selected.has(i)) selected.delete(i);
    else selected.add(i);
    anchor = i;
    base = new Set(selected);
  }

  function selectAll() {
    var all = cards.map(function (_, i) { return i; });
    selected = selected.size === cards.length ? new Set() : new Set(all);
    anchor = null;
    base = new Set(selected);
    render();
  }

  function ask(action, label) {
    if (!selected.size) {
      window.alert("Select items first: click them, or use Space and Shift + arrows.");
      return;
    }
    var warned = 0;
    selected.forEach(function (i) {
      if (cards[i].dataset.warned === "1") warned++;
    });
    var text;
    if (action === "confirm") {
      var count = selected.size - warned;
      text = "Confirm the suggested rating of " + count + " item" + (count === 1 ? "" : "s") + "?";
      if (warned) {
        text += " " + warned + " with a down-class warning " + (warned === 1 ? "is" : "are") +
          " left out and go back to the queue for single review.";
      }
    } else {
      text = "Set " + label + " for " + selected.size + " item" + (selected.size === 1 ? "" : "s") +
        "? Each is one decision; a big downgrade waits for a second moderator.";
    }
    pending = action;
    document.getElementById("grid-confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
  }

  function submit(action) {
    decide.querySelectorAll("input[name=uid]").forEach(function (input) { input.remove(); });
    selected.forEach(function (i) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "uid";
      input.value = cards[i].dataset.uid;
      decide.appendChild(input);
    });
    decide.querySelector("input[name=action]").value = action;
    decide.requestSubmit();
  }

  dialog.addEventListener("close", function () {
    var action = pending;
    pending = null;
    if (dialog.returnValue === "ok" && action) submit(action);
  });

  root.addEventListener("click", function (event) {
    var button = event.target.closest("[data-grid]");
    if (button) {
      var key = button.dataset.grid;
      if (key === "all") selectAll();
      else ask(key, button.dataset.label);
      return;
    }
    var card = event.target.closest(".grid-card");
    if (!card || event.target.closest("a")) return;
    var i = cards.indexOf(card);
    if (event.shiftKey && anchor !== null) selectRange(anchor, i);
    else toggle(i);
    moveFocus(i);
    render();
  });

  root.addEventListener("focusin", function (event) {
    var i = cards.indexOf(event.target);
    if (i >= 0) focus = i;
  });

  var MOVES = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: "up", ArrowDown: "down" };
  var RATINGS = ["1", "2", "3", "4", "5"];

  document.addEventListener("keydown", function (event) {
    if (dialog.open || event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = event.target && event.target.tagName ? event.target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "select" || tag === "textarea") return;
    if (!cards.length) return;
    var key = event.key;
    if (key in MOVES) {
      event.preventDefault();
      var step = MOVES[key];
      if (step === "up") step = -columns();
      if (step === "down") step = columns();
      var active = cards.indexOf(document.activeElement);
      var from = active >= 0 ? active : focus;
      var to = Math.max(0, Math.min(cards.length - 1, from + step));
      if (event.shiftKey) {
        if (anchor === null) {
          anchor = from;
          base = new Set(selected);
        }
        selectRange(anchor, to);
      } else {
        anchor = null; // the next range starts where the focus is then
      }
      moveFocus(to);
      render();
      return;
    }
    if (key === " " && !event.repeat) {
      event.preventDefault();
      toggle(focus);
      render();
      return;
    }
    if (event.repeat) return;
    if (key === "a") selectAll();
    else if (key === "Escape") {
      selected = new Set();
      anchor = null;
      base = new Set();
      render();
    } else if (key === "Enter" || key === "c") {
      if (tag === "button" || tag === "a") return; // Enter on a focused button clicks it
      event.preventDefault();
      ask("confirm");
    } else if (RATINGS.indexOf(key) >= 0) {
      var button = root.querySelectorAll(".grid-set [data-grid]")[Number(key) - 1];
      event.preventDefault();
      ask(button.dataset.grid, button.dataset.label);
    }
  });

  // The page's own forms leave it on purpose: the server keeps or gives back the items.
  document.addEventListener("submit", function (event) {
    if (event.target.getAttribute("method") !== "dialog") leaving = false;
  }, true);
  window.addEventListener("pagehide", function () {
    if (!leaving || !cards.length) return;
    var data = new FormData();
    data.append("csrfmiddlewaretoken", root.dataset.csrf);
    data.append("beacon", "1");
    navigator.sendBeacon(root.dataset.releaseUrl, data);
  });
  // Back to a page kept in the browser's cache: its items were given back, so show what is
  // held now.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) window.location.reload();
  });

  render();
})();
