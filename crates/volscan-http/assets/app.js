// volscan dashboard: the one script. Pages work without it; it only keeps
// queued and running scans up to date without a reload, and reloads the page
// once they have all finished so that the new sizes show.
"use strict";
(function () {
  const live = Array.from(document.querySelectorAll("[data-live-scan]"));
  if (live.length === 0) return;
  const finished = new Set(["completed", "failed", "canceled"]);
  let changed = false;

  async function poll() {
    let pending = 0;
    for (const row of live) {
      if (row.dataset.done === "1") continue;
      const id = row.dataset.liveScan;
      try {
        const response = await fetch("/live/scans/" + encodeURIComponent(id), {
          headers: { accept: "application/json" },
          credentials: "same-origin",
          cache: "no-store",
        });
        if (!response.ok) { pending += 1; continue; }
        const run = await response.json();
        for (const field of row.querySelectorAll("[data-field=status]")) {
          field.textContent = run.status;
          field.className = "badge " + run.status;
        }
        for (const bar of row.querySelectorAll("progress")) {
          bar.value = run.progress;
          bar.textContent = run.progress + " %";
        }
        for (const text of row.querySelectorAll("[data-field=progress]")) {
          text.textContent = run.progress + " %";
        }
        if (finished.has(run.status)) {
          row.dataset.done = "1";
          changed = true;
          for (const form of row.querySelectorAll("form[data-cancel]")) form.remove();
        } else {
          pending += 1;
        }
      } catch (_) {
        pending += 1;
      }
    }
    if (pending > 0) {
      window.setTimeout(poll, 1000);
    } else if (changed) {
      window.location.reload();
    }
  }
  window.setTimeout(poll, 500);
})();
