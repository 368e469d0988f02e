// Slow actions say they are working, and cannot be sent twice. A form marked
// data-busy="Starting…" disables its submit buttons once submitted and shows a spinner and that
// text in the button that sent it (or, when the form has no visible button of its own, in a
// status line at the top of the page); a second submit of a busy form is dropped.
// data-busy-disable="<selector>" disables more elements (buttons outside the form that
// submit it from script, as the grid's toolbar does). Requests htmx sends from inside a
// data-busy element show the same spinner until htmx has its answer; htmx's own
// hx-disabled-elt disables what they name. The server refuses a second action on its own:
// this only spares the admin the wait and the doubt.
(function () {
  "use strict";

  function spinner() {
    var span = document.createElement("span");
    span.className = "busy-spinner";
    span.setAttribute("aria-hidden", "true");
    return span;
  }

  function visible(element) {
    return !!(element.offsetWidth || element.offsetHeight || element.getClientRects().length);
  }

  function submitButtons(form) {
    return Array.prototype.filter.call(form.elements, function (element) {
      return element.type === "submit";
    });
  }

  // The button shows the spinner and the busy text; its own content comes back on pageshow.
  function showIn(button, text) {
    button.dataset.busyRestore = button.innerHTML;
    button.textContent = "";
    button.appendChild(spinner());
    button.appendChild(document.createTextNode(" " + text));
  }

  function showStatus(form, text) {
    var status = document.createElement("div");
    status.className = "busy-status";
    status.setAttribute("role", "status");
    status.appendChild(spinner());
    status.appendChild(document.createTextNode(" " + text));
    document.body.appendChild(status);
    form.busyStatus = status;
  }

  function start(form, submitter) {
    var text = form.getAttribute("data-busy") || "Working…";
    form.classList.add("is-busy");
    form.setAttribute("aria-busy", "true");
    var buttons = submitButtons(form);
    var extra = form.getAttribute("data-busy-disable");
    if (extra) buttons = buttons.concat(Array.prototype.slice.call(document.querySelectorAll(extra)));
    var shown = submitter && visible(submitter) ? submitter : buttons.filter(visible)[0];
    if (submitter && submitter.name) {
      // A disabled button is not sent with its form: its name and value go as a hidden field.
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = submitter.name;
      field.value = submitter.value;
      field.dataset.busyField = "";
      form.appendChild(field);
    }
    buttons.forEach(function (button) {
      button.dataset.busyWasDisabled = button.disabled ? "1" : "";
      button.disabled = true;
    });
    form.busyButtons = buttons;
    if (shown && shown.form === form) showIn(shown, text);
    else showStatus(form, text);
  }

  function stop(form) {
    form.classList.remove("is-busy");
    form.removeAttribute("aria-busy");
    (form.busyButtons || []).forEach(function (button) {
      button.disabled = button.dataset.busyWasDisabled === "1";
      if (button.dataset.busyRestore !== undefined) {
        button.innerHTML = button.dataset.busyRestore;
        delete button.dataset.busyRestore;
      }
    });
    form.busyButtons = null;
    if (form.busyStatus) form.busyStatus.remove();
    form.busyStatus = null;
    form.querySelectorAll("[data-busy-field]").forEach(function (field) { field.remove(); });
  }

  // Bubbling, so that a handler on the form that cancels the submit (htmx's, a confirm step)
  // has run: a cancelled submit leaves the form as it was.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-busy")) return;
    if (form.classList.contains("is-busy")) {
      event.preventDefault(); // the second click of a double click
      return;
    }
    if (event.defaultPrevented) return;
    start(form, event.submitter || null);
  });

  // Back to a page kept in the browser's cache: its forms are not busy any more.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form.is-busy").forEach(stop);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.target.closest && event.target.closest("[data-busy]");
    if (form && !form.classList.contains("is-busy")) {
      form.classList.add("is-busy", "busy-htmx");
      form.setAttribute("aria-busy", "true");
      showStatus(form, form.getAttribute("data-busy") || "Working…");
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target.closest && event.target.closest("[data-busy].busy-htmx");
    if (form) {
      form.classList.remove("busy-htmx");
      stop(form);
    }
  });
})();
