// A request htmx sends from a page (a decision, a skip, a claim) that the server refuses or
// cannot answer swaps nothing in: without this the page would look as if the key did nothing.
// The answer is said in a message at the top of the page, with what to do about it.
(function () {
  "use strict";

  var SAID = {
    403: "That was refused: it is not yours to do (any more). Reload the page to see where things stand.",
    404: "That item is gone (purged or moved). Reload the page for the next one.",
    409: "Someone changed this item meanwhile. Reload the page to see it as it is now.",
    429: "Too many requests at once: wait a moment and try again.",
    503: "The database is not answering just now: try again in a moment."
  };

  function say(text) {
    var main = document.querySelector("main");
    if (!main) return;
    var list = document.getElementById("request-error");
    if (!list) {
      list = document.createElement("ul");
      list.id = "request-error";
      list.className = "messages";
      main.insertBefore(list, main.firstChild);
    }
    list.innerHTML = "";
    var item = document.createElement("li");
    item.className = "message message-error";
    item.setAttribute("role", "alert");
    item.textContent = text;
    list.appendChild(item);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    say(SAID[status] || (status >= 500
      ? "Something went wrong on our side (" + status + "); it has been logged. Try again, or reload the page."
      : "The server refused that (" + status + "). Reload the page and try again."));
  });
  document.addEventListener("htmx:sendError", function () {
    say("The server cannot be reached: check the connection, then try again.");
  });
  // The next answer that went through takes the message away.
  document.addEventListener("htmx:afterRequest", function (event) {
    var list = document.getElementById("request-error");
    if (list && event.detail.successful) list.remove();
  });
})();
