// volscan dashboard: the one script. Pages work without it; it only keeps
// queued and running scans up to date without a reload (one request a
// second for all of them), and reloads the page once they have all
// finished so that the new sizes show.
"use strict";
(function () {
  const live = Array.from(document.querySelectorAll("[data-live-scan]"));
  if (live.length === 0) return;
  const finished = new Set(["completed", "failed", "canceled"]);
  let changed = false;

  function show(element, run) {
    for (const field of element.querySelectorAll("[data-field=status]")) {
      field.textContent = run.status;
      field.className = "badge " + run.status;
    }
    for (const bar of element.querySelectorAll("progress")) {
      bar.value = run.progress;
      bar.textContent = run.progress + " %";
    }
    for (const text of element.querySelectorAll("[data-field=progress]")) {
      text.textContent = run.progress + " %";
    }
    if (finished.has(run.status)) {
      element.dataset.done = "1";
      for (const form of element.querySelectorAll("[data-cancel]")) form.remove();
    }
  }

  async function poll() {
    const pending = live.filter((element) => element.dataset.done !== "1");
    const ids = Array.from(new Set(pending.map((element) => element.dataset.liveScan)));
    if (ids.length === 0) {
      if (changed) window.location.reload();
      return;
    }
    try {
      const response = await fetch("/live/scans?ids=" + ids.slice(0, 200).join(","), {
        headers: { accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.ok) {
        const runs = await response.json();
        for (const element of pending) {
          const run = runs[element.dataset.liveScan];
          if (run) {
            show(element, run);
            if (finished.has(run.status)) changed = true;
          }
        }
      }
    } catch (_) {
      // The server may be restarting; the next poll tries again.
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
})();
