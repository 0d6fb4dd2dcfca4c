// The little that htmx does not cover: the panel toggle and shortcut, relative times,
// auto-submitting filters, the "N new" banner, dialogs, the log-detail toggle.
(function () {
  "use strict";
  var socket = null;

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
    if (d) { var dlg = document.getElementById(d.getAttribute("data-dialog")); if (dlg) dlg.showModal(); return; }
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
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.elt && e.detail.elt.hasAttribute("data-load-more") && e.detail.successful) send({ type: "paged" });
  });

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
