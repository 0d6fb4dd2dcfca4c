// The little that htmx does not cover: the panel toggle and shortcut, relative times,
// auto-submitting filters, the "N new" banner, dialogs, the log-detail toggle, row selection.
(function () {
  "use strict";
  var socket = null;

  // Reconnect with jittered backoff capped at 5 s (htmx's default grows to a minute): after a
  // server restart a dashboard is back within seconds, and a thousand of them still spread out.
  htmx.config.wsReconnectDelay = function (retryCount) {
    var cap = Math.min(5000, 500 * Math.pow(2, retryCount));
    return cap / 4 + Math.random() * (cap * 3 / 4);
  };

  function send(message) {
    if (socket) socket.send(JSON.stringify(message));
  }

  // --- Command Center panel ---------------------------------------------------------------
  function togglePanel(force) {
    var panel = document.getElementById("cc-panel");
    if (!panel) return;
    var open = force === undefined ? panel.hidden : force;
    panel.hidden = !open;
    document.querySelectorAll("[data-cc-toggle][aria-controls]").forEach(function (b) {
      b.setAttribute("aria-expanded", String(open));
    });
    if (open) {
      var body = document.getElementById("cc-panel-body");
      if (body) htmx.trigger(body, "cc:open");
      var first = panel.querySelector("a, button");
      if (first) first.focus();
    }
  }
  document.addEventListener("click", function (e) {
    var t = e.target.closest("[data-cc-toggle]");
    if (t) { togglePanel(); return; }
    var d = e.target.closest("[data-dialog]");
    if (d) {
      var dlg = document.getElementById(d.getAttribute("data-dialog"));
      // A dialog whose content is fetched on open listens for scc:open (hx-trigger).
      if (dlg) { dlg.showModal(); htmx.trigger(dlg, "scc:open"); }
      return;
    }
    var mode = e.target.closest("[data-logmode]");
    if (mode) { setLogMode(mode.getAttribute("data-logmode")); return; }
    if (e.target.closest("[data-show-new]")) {
      send({ type: "unpaged" });
      window.scrollTo({ top: 0 });
    }
  });
  document.addEventListener("keydown", function (e) {
    var typing = e.target.closest("input, textarea, select, [contenteditable]");
    if (e.key === "Escape") { togglePanel(false); return; }
    if (!typing && !e.metaKey && !e.ctrlKey && !e.altKey && e.key === "c") {
      e.preventDefault();
      togglePanel();
    }
    if (e.target.id === "composer-text" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      e.target.form.requestSubmit();
    }
  });

  // --- relative times that stay current -----------------------------------------------------
  var rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  function relative(date) {
    var secs = (date.getTime() - Date.now()) / 1000;
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(secs) >= units[i][1] || units[i][0] === "second") {
        if (units[i][0] === "second" && Math.abs(secs) < 10) return "just now";
        return rtf.format(Math.round(secs / units[i][1]), units[i][0]);
      }
    }
    return "";
  }
  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-relative]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) { t.textContent = relative(d); t.title = d.toLocaleString(); }
    });
  }
  setInterval(refreshTimes, 15000);
  document.addEventListener("DOMContentLoaded", function () { refreshTimes(); applyLogMode(); });
  document.addEventListener("htmx:afterSettle", function (e) { refreshTimes(e.target); });
  document.addEventListener("htmx:wsAfterMessage", function () { refreshTimes(); applyLogMode(); });

  // --- filters submit themselves ---------------------------------------------------------------
  document.addEventListener("change", function (e) {
    var form = e.target.closest("form[data-autosubmit]");
    if (form && e.target.name !== "q") form.requestSubmit();
  });

  // --- websocket state and paging ---------------------------------------------------------------
  function setConn(state) {
    var el = document.getElementById("conn-state");
    if (el) { el.dataset.state = state; el.textContent = state === "live" ? "live" : state; }
  }
  document.addEventListener("htmx:wsOpen", function (e) { socket = e.detail.socketWrapper; setConn("live"); });
  document.addEventListener("htmx:wsClose", function () { setConn("offline"); });
  document.addEventListener("htmx:wsConnecting", function () { setConn("connecting"); });
  // "Load more" means the reader went past the first page: from then on the server counts new
  // rows in a banner instead of moving the list. The request's element may be the button or the
  // list it targets, so look at what triggered it as well.
  document.addEventListener("htmx:afterRequest", function (e) {
    if (!e.detail.successful) return;
    var elt = e.detail.elt, trigger = e.detail.requestConfig && e.detail.requestConfig.triggeringEvent;
    var source = trigger && trigger.target && trigger.target.closest ? trigger.target.closest("[data-load-more]") : null;
    if (source || (elt && elt.closest && elt.closest("[data-load-more]"))) send({ type: "paged" });
  });

  // --- what a person is doing survives live pushes -------------------------------------------
  // A push re-renders whole fragments (the detail header, panel items). Before a swap, remember
  // which <details> with an id are open and which input has focus (and its selection); restore
  // them on the new elements after it, so a menu or a half-typed value never vanishes.
  var interaction = null;
  function remember(target) {
    if (!target || !target.querySelectorAll) return;
    var active = document.activeElement;
    interaction = {
      open: Array.prototype.map.call(target.querySelectorAll("details[open][id]"), function (d) { return d.id; }),
      focus: active && active.id && target.contains(active) ? active.id : null,
      value: active && "value" in active ? active.value : null,
      start: active && active.selectionStart, end: active && active.selectionEnd
    };
  }
  function restore() {
    if (!interaction) return;
    interaction.open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
    if (interaction.focus) {
      var el = document.getElementById(interaction.focus);
      if (el) {
        if (interaction.value !== null && "value" in el) el.value = interaction.value;
        el.focus();
        if (interaction.start !== null && el.setSelectionRange) {
          try { el.setSelectionRange(interaction.start, interaction.end); } catch (err) { /* not a text input */ }
        }
      }
    }
    interaction = null;
  }
  document.addEventListener("htmx:oobBeforeSwap", function (e) { remember(e.detail.target); });
  document.addEventListener("htmx:oobAfterSwap", restore);
  document.addEventListener("htmx:beforeSwap", function (e) { remember(e.detail.target); });
  document.addEventListener("htmx:afterSwap", restore);

  // A dialog's action went through: close the dialog (its result shows in the header). A dialog
  // with data-keep-open shows its own errors and leaves by a redirect, so it stays.
  document.addEventListener("htmx:afterRequest", function (e) {
    var dlg = e.detail.elt && e.detail.elt.closest && e.detail.elt.closest("dialog");
    if (dlg && e.detail.successful && dlg.open && !dlg.hasAttribute("data-keep-open")) dlg.close();
  });
  // Picking an item of a menu closes the menu.
  document.addEventListener("click", function (e) {
    var item = e.target.closest(".menu [role=menuitem]");
    if (item) { var menu = item.closest("details"); if (menu) menu.open = false; }
  });

  // --- live operations ------------------------------------------------------------------------
  // Pushes name elements that may not be on this page (another page of the list, a section the
  // panel does not show): they arrive as <template data-op> in #live-ops and are applied here.
  // Inserts go where a reload would put them: containers keep their children in descending
  // data-sort order (the list order), so a change that does not touch recency stays in place.
  function insertSorted(container, el) {
    var key = el.getAttribute("data-sort") || "";
    var kids = container.querySelectorAll(":scope > [data-sort]");
    for (var i = 0; i < kids.length; i++) {
      if ((kids[i].getAttribute("data-sort") || "") < key) { container.insertBefore(el, kids[i]); return; }
    }
    // Past the end of a list with more pages: a reload would not show it on this page either.
    var more = container.closest("#session-list") && document.querySelector("#load-more [data-load-more]");
    var restShown = document.querySelector("#rows-rest > [data-sort]");
    if (more && (container.id === "rows-rest" || !restShown) && kids.length) return;
    container.appendChild(el);
  }
  function applyLiveOps() {
    var box = document.getElementById("live-ops");
    if (!box || !box.firstElementChild) return;
    // An item may be replaced while someone types a reply in it: keep focus, text and menus.
    remember(document.body);
    box.querySelectorAll("template[data-op]").forEach(function (t) {
      var op = t.getAttribute("data-op"), target = t.getAttribute("data-target");
      var el = t.content.firstElementChild;
      if (op === "remove") {
        var gone = document.getElementById(target); if (gone) gone.remove();
      } else if (op === "replace" && el) {
        var old = document.getElementById(el.id);
        if (old) { old.replaceWith(el); htmx.process(el); }
      } else if (op === "insert" && el) {
        var container = document.getElementById(target);
        if (container) {
          var existing = document.getElementById(el.id); if (existing) existing.remove();
          insertSorted(container, el);
          htmx.process(el);
        }
      }
    });
    box.innerHTML = "";
    restore();
  }
  document.addEventListener("htmx:wsAfterMessage", applyLiveOps);

  // --- row selection for bulk actions ---------------------------------------------------------
  // Rows are re-rendered by pushes and snapshots; the selection lives here and is put back on
  // the new checkboxes, so a live update never unticks what the operator picked.
  var selected = new Set();
  function syncSelection() {
    var shown = 0;
    document.querySelectorAll(".row-select").forEach(function (box) {
      box.checked = selected.has(box.value);
      if (box.checked) shown++;
    });
    document.querySelectorAll("[data-selected-count]").forEach(function (el) { el.textContent = String(shown); });
    var radio = document.querySelector('[data-bulk-scope="' + (shown ? "selected" : "filter") + '"]');
    if (radio) radio.checked = true;
  }
  document.addEventListener("change", function (e) {
    var box = e.target.closest(".row-select");
    if (!box) return;
    if (box.checked) selected.add(box.value); else selected.delete(box.value);
    syncSelection();
  });
  document.addEventListener("htmx:wsAfterMessage", syncSelection);
  document.addEventListener("htmx:afterSwap", syncSelection);

  // --- All logs / Concise ------------------------------------------------------------------------
  function applyLogMode() {
    var mode = localStorage.getItem("scc-logmode") || "all";
    var t = document.getElementById("transcript");
    if (t) t.classList.toggle("concise", mode === "concise");
    document.querySelectorAll("[data-logmode]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-logmode") === mode));
    });
  }
  function setLogMode(mode) { localStorage.setItem("scc-logmode", mode); applyLogMode(); }
})();
