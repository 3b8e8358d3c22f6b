// Slipway dashboard: live updates. The server pushes a `change` event (Server-Sent Events)
// for every Cluster, Machine and Event written; when one concerns this page, the page
// refetches its own sections (`?fragment=1`) and replaces those that changed.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var status = document.getElementById("live");
  if (!main || !main.dataset.scope || !window.EventSource) return;
  var scope = main.dataset.scope;
  var namespace = main.dataset.namespace;
  var name = main.dataset.name;
  var timer = null, busy = false, again = false, opened = false;

  function show(state, text) {
    if (!status) return;
    status.textContent = text;
    status.className = "live " + state;
  }

  function concerns(c) {
    if (scope === "overview") return c.kind === "Cluster" || c.kind === "Machine";
    if (scope === "cluster") {
      // Events about machines name the machine, not the cluster: any event of the team counts.
      return c.namespace === namespace && (c.cluster === name || c.kind === "Event");
    }
    return false;
  }

  function schedule() {
    if (timer === null) timer = setTimeout(refresh, 200);
  }

  function refresh() {
    timer = null;
    if (busy) { again = true; return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/ui/login"); return null; }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (text) {
        if (text === null) return;
        var doc = new DOMParser().parseFromString("<main>" + text + "</main>", "text/html");
        doc.querySelectorAll("main > section[id]").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          if (!old) main.appendChild(document.importNode(fresh, true));
          else if (old.innerHTML !== fresh.innerHTML) old.replaceWith(document.importNode(fresh, true));
        });
        main.dataset.refreshed = String((Number(main.dataset.refreshed) || 0) + 1);
        show("on", "Live");
      })
      .catch(function () { show("off", "Update failed; retrying"); setTimeout(schedule, 2000); })
      .finally(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
  }

  var source = new EventSource("/ui/api/events");
  source.addEventListener("change", function (e) {
    try { if (concerns(JSON.parse(e.data))) schedule(); } catch (err) { /* not ours */ }
  });
  source.onopen = function () {
    show("on", "Live");
    // After a reconnect, catch up on whatever changed while the stream was down.
    if (opened) schedule();
    opened = true;
  };
  source.onerror = function () { show("off", "Reconnecting…"); };
})();
