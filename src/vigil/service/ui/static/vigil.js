// Vigil console: live refresh of findings views (server-sent events) and copy buttons.
// Loaded as a file so the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";

  function setLive(state) {
    document.querySelectorAll("[data-live-status]").forEach(function (el) {
      el.dataset.state = state;
      el.textContent = state === "open" ? "live" : state;
    });
  }

  function startLive() {
    if (!document.querySelector("[data-live]") || !window.EventSource) return;
    var source = new EventSource("/ui/events");
    source.addEventListener("open", function () { setLive("open"); });
    source.addEventListener("error", function () { setLive("reconnecting"); });
    source.addEventListener("signed-out", function () { source.close(); window.location.assign("/login"); });
    source.addEventListener("findings", function () {
      document.querySelectorAll("[data-live]").forEach(function (el) { htmx.trigger(el, "vigil:findings"); });
    });
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    var text = btn.dataset.copy;
    var done = function () { btn.textContent = "copied"; setTimeout(function () { btn.textContent = "copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var area = document.createElement("textarea");
      area.value = text; document.body.appendChild(area); area.select();
      document.execCommand("copy"); area.remove(); done();
    }
  });

  // Filter selects apply at once; the form is a plain GET, so the URL carries the view.
  document.addEventListener("change", function (ev) {
    // Only GET filter forms: a change form (POST) is sent by its button, never by choosing an option.
    if (ev.target.matches("form.filters:not([method=post]) select, form.filters:not([method=post]) input[type=checkbox]")) ev.target.form.requestSubmit();
  });

  document.addEventListener("DOMContentLoaded", startLive);
})();
