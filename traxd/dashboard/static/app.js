// Live regions: every element with data-live is refreshed from its URL (server-rendered, escaped HTML).
"use strict";
const REFRESH_MS = 1000;

function live(el) {
  const url = el.dataset.live;
  let busy = false;
  setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const r = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (r.ok) el.innerHTML = await r.text();
    } catch (e) {
      // the server is restarting: try again at the next tick
    } finally {
      busy = false;
    }
  }, REFRESH_MS);
}

document.querySelectorAll("[data-live]").forEach(live);

// A click on a transcript line plays the original from that moment.
document.addEventListener("click", (event) => {
  const line = event.target.closest("[data-t]");
  const audio = document.getElementById("media");
  if (!line || !audio) return;
  audio.currentTime = parseFloat(line.dataset.t);
  audio.play();
});
