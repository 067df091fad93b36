// Live thread page: the API streams each new event (SSE); we re-fetch the page's live parts.
// Without JavaScript the page still works: the Refresh link reloads it.
"use strict";
(() => {
  const live = document.getElementById("live");
  if (!live || !("EventSource" in window) || !("fetch" in window)) return;
  const types = JSON.parse(live.dataset.eventTypes || "[]");
  let running = false;
  let again = false;
  let timer = 0;

  // Swap the children of element `id` for the fresh ones, keeping open <details> open.
  function swap(fresh, id) {
    const next = fresh.getElementById(id);
    const current = document.getElementById(id);
    if (!next || !current) return;
    const open = [...current.querySelectorAll("details[open][id]")].map((d) => d.id);
    current.replaceChildren(...next.childNodes);
    for (const name of open) document.getElementById(name)?.setAttribute("open", "");
  }

  function apply(fresh) {
    swap(fresh, "thread-status");
    swap(fresh, "thread-stats");
    swap(fresh, "timeline");
    const status = fresh.getElementById("thread-status");
    if (status?.dataset.title) document.title = status.dataset.title;
    // Replace the request card only when the request changed: keep what the person is typing.
    const pending = fresh.getElementById("pending");
    const current = document.getElementById("pending");
    if (pending && current && pending.dataset.request !== current.dataset.request) {
      current.dataset.request = pending.dataset.request;
      swap(fresh, "pending");
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
      if (response.ok) apply(new DOMParser().parseFromString(await response.text(), "text/html"));
    } catch {
      // Offline or restarting: the next event (or the Refresh link) catches up.
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
  const source = new EventSource(live.dataset.stream);
  for (const type of types) source.addEventListener(type, changed);
  source.addEventListener("message", changed);
  document.getElementById("live-note")?.removeAttribute("hidden");
  window.addEventListener("pagehide", () => source.close());
})();
