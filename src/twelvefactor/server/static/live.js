// Live pages: when something changes, re-fetch the page's live parts (#live's data-live URL) and swap
// them in place. The thread page learns of changes from the API's event stream (data-stream, SSE);
// the thread list, which has no stream, re-fetches every data-poll milliseconds while it is visible.
// Without JavaScript the pages still work: the Refresh link reloads them.
"use strict";
(() => {
  const live = document.getElementById("live");
  if (!live || !("fetch" in window)) return;
  const stream = live.dataset.stream;
  const poll = Number(live.dataset.poll || 0);
  if (stream ? !("EventSource" in window) : !(poll > 0)) return;
  const types = JSON.parse(live.dataset.eventTypes || "[]");
  let running = false;
  let again = false;
  let timer = 0;
  let last = "";

  // Swap the children of element `id` for the fresh ones, keeping open <details> open.
  function swap(fresh, id) {
    const next = fresh.getElementById(id);
    const current = document.getElementById(id);
    if (!next || !current) return;
    const open = [...current.querySelectorAll("details[open][id]")].map((d) => d.id);
    current.replaceChildren(...next.childNodes);
    for (const name of open) document.getElementById(name)?.setAttribute("open", "");
  }

  // Every [data-part] is swapped; one with a data-key (the request card) only when its key changed,
  // so what the person is typing there is kept.
  function apply(fresh) {
    for (const part of fresh.querySelectorAll("[data-part][id]")) {
      const current = document.getElementById(part.id);
      if (!current) continue;
      if (part.dataset.key !== undefined) {
        if (part.dataset.key === current.dataset.key) continue;
        current.dataset.key = part.dataset.key;
      }
      if (part.dataset.title) document.title = part.dataset.title;
      swap(fresh, part.id);
    }
  }

  async function refresh() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const response = await fetch(live.dataset.live, { headers: { Accept: "text/html" }, cache: "no-store" });
      const html = response.ok ? await response.text() : "";
      // Unchanged HTML is not swapped: keyboard focus on a link in the list stays where it is.
      if (html && html !== last) {
        last = html;
        apply(new DOMParser().parseFromString(html, "text/html"));
      }
    } catch {
      // Offline or restarting: the next event or poll (or the Refresh link) catches up.
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      refresh();
    }
  }

  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 50);
  };
  if (stream) {
    const source = new EventSource(stream);
    for (const type of types) source.addEventListener(type, changed);
    source.addEventListener("message", changed);
    window.addEventListener("pagehide", () => source.close());
  } else {
    setInterval(() => document.hidden || refresh(), poll);
    document.addEventListener("visibilitychange", () => document.hidden || changed());
  }
  document.getElementById("live-note")?.removeAttribute("hidden");
})();
