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
        if (n.getAttribute("data-fold") !== key) { return; }
        n.open = true;
        // A lazy value already loaded is kept, not fetched again (within a generation a
        // recorded step's output does not change; the key carries the generation).
        var was = d.querySelector(".lazy"), now = n.querySelector(".lazy");
        if (was && now && d.hasAttribute("data-loaded")) {
          now.innerHTML = was.innerHTML;
          n.removeAttribute("hx-get");
          n.setAttribute("data-loaded", "");
        }
      });
    });
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
      } else {
        var parent = document.getElementById(el.getAttribute("data-parent") || "");
        if (!parent) { return; }
        if (el.hasAttribute("data-prepend")) { parent.prepend(el); } else { parent.append(el); }
      }
      // htmx attributes of the new element (lazy step outputs) work once processed; an
      // open lazy value not loaded yet is asked for (its toggle came before htmx knew it).
      if (window.htmx) {
        window.htmx.process(el);
        el.querySelectorAll("details[open][hx-get]:not([data-loaded])").forEach(function (d) {
          window.htmx.trigger(d, "toggle");
        });
      }
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
  document.addEventListener("htmx:afterSwap", function (evt) {
    var details = evt.target.closest && evt.target.closest("details[data-fold]");
    if (details && evt.target.classList.contains("lazy")) { details.setAttribute("data-loaded", ""); }
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
