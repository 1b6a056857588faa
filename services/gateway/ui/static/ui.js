// The dashboard's live updates: htmx's SSE extension keeps the EventSource (and its
// reconnects, which carry Last-Event-ID); this places each pushed fragment by id.
// Top-level elements of a fragment replace the element with their id (keeping open
// <details> and a chosen <select> value), or, when new, go into their data-parent
// (on top with data-prepend); data-op="remove" removes. Ours; no inline script anywhere.
(function () {
  "use strict";

  function keepState(oldEl, newEl) {
    oldEl.querySelectorAll("details[open][data-fold]").forEach(function (d) {
      var key = d.getAttribute("data-fold");
      newEl.querySelectorAll("details[data-fold]").forEach(function (n) {
        if (n.getAttribute("data-fold") === key) { n.open = true; }
      });
    });
    if (oldEl.tagName === "DETAILS" && oldEl.open) { newEl.open = true; }
    if (oldEl.tagName === "SELECT") {
      var value = oldEl.value;
      Array.prototype.forEach.call(newEl.options, function (o) {
        if (o.value === value) { newEl.value = value; }
      });
    }
  }

  function place(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var count = 0;
    Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
      var id = el.id;
      if (!id) { return; }
      var existing = document.getElementById(id);
      if (el.getAttribute("data-op") === "remove") {
        if (existing) { existing.remove(); count++; }
        return;
      }
      if (existing) {
        keepState(existing, el);
        existing.replaceWith(el);
        count++;
        return;
      }
      var parent = document.getElementById(el.getAttribute("data-parent") || "");
      if (!parent) { return; }
      if (el.hasAttribute("data-prepend")) { parent.prepend(el); } else { parent.append(el); }
      count++;
    });
    return count;
  }

  document.addEventListener("htmx:sseBeforeMessage", function (evt) {
    evt.preventDefault();
    place(evt.detail.data);
    var live = evt.target.closest("[data-live]");
    if (live) {
      live.setAttribute("data-last-event", evt.detail.lastEventId || "");
    }
  });
  document.addEventListener("htmx:sseOpen", function (evt) {
    var live = evt.target.closest("[data-live]");
    if (live) { live.textContent = "live"; live.classList.add("on"); live.classList.remove("off"); }
  });
  document.addEventListener("htmx:sseError", function (evt) {
    var live = evt.target.closest("[data-live]");
    if (live) { live.textContent = "reconnecting…"; live.classList.add("off"); live.classList.remove("on"); }
  });
})();
