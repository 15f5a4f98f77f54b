// Wander dashboard: optional live refresh (progressive enhancement).
// Every 10 s, while the tab is visible, each <section data-refresh="/partials/..."> is fetched
// again from this server and swapped in. Without JavaScript the page works the same, only static.
(function () {
  "use strict";
  var PERIOD_MS = 10000;

  function refresh(section) {
    var url = section.getAttribute("data-refresh");
    if (!url || url.charAt(0) !== "/") return Promise.resolve();
    return fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) {
        var template = document.createElement("template");
        template.innerHTML = html;
        var fresh = template.content.querySelector("section[id]");
        if (fresh && fresh.id === section.id && section.isConnected) {
          section.replaceWith(fresh);
        }
      })
      .catch(function () {
        // The dashboard server is unreachable: keep what is shown, try again next round.
      });
  }

  function tick() {
    if (document.visibilityState !== "visible") return;
    document.querySelectorAll("section[data-refresh]").forEach(refresh);
  }

  if (!("fetch" in window) || !("content" in document.createElement("template"))) return;
  window.setInterval(tick, PERIOD_MS);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") tick();
  });
})();
