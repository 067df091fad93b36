// Live pages: when something changes, re-fetch the page's live parts (#live's data-live URL) and swap
// them in place. The thread page learns of changes from the API's event stream (data-stream, SSE);
// the thread list, which has no stream, re-fetches every data-poll milliseconds while it is visible.
// A workflow's page also follows the streams of the sub-threads still at work (their [data-substream]
// elements), as what a sub-agent does is recorded on its own thread.
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

  // The <details> the person opened or closed (id -> open): they stay so across updates; the others
  // are as the server renders them (a sub-thread's events, unfolded while it works).
  const chosen = new Map();
  document.addEventListener("click", (event) => {
    const summary = event.target instanceof Element ? event.target.closest("details[id] > summary") : null;
    if (summary) chosen.set(summary.parentElement.id, !summary.parentElement.open); // before it toggles
  });

  // Swap the children of element `id` for the fresh ones, keeping the person's <details> as they left
  // them, and any element inside with a data-key (a sub-thread's request card) as it is while its key is
  // unchanged: what the person is typing there stays, and so does the focus.
  function swap(fresh, id) {
    const next = fresh.getElementById(id);
    const current = document.getElementById(id);
    if (!next || !current) return;
    const focused = document.activeElement;
    for (const part of next.querySelectorAll("[data-key][id]")) {
      const kept = document.getElementById(part.id);
      if (kept && current.contains(kept) && kept.dataset.key === part.dataset.key) part.replaceWith(kept);
    }
    for (const details of next.querySelectorAll("details[id]")) {
      if (chosen.has(details.id)) details.open = chosen.get(details.id);
    }
    current.replaceChildren(...next.childNodes);
    if (focused instanceof HTMLElement && focused !== document.activeElement && focused.isConnected) focused.focus();
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
    follow();
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
  const listen = (url) => {
    const source = new EventSource(url);
    for (const type of types) if (type !== "delta") source.addEventListener(type, changed);
    source.addEventListener("message", changed);
    return source;
  };

  // The model's reply while it streams (the stream's "delta" frames, which have no id): shown in the
  // #writing card as the next step so far, until the call is recorded (its model_call, or an error).
  // Model output is untrusted: it only ever goes in through textContent.
  const writing = document.getElementById("writing");
  let over = 0; // replies of calls at versions below this are recorded
  function write(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!writing || typeof data.version !== "number" || data.version < over) return;
    const value = data.partial ? data.partial.value : null;
    const fields = [];
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, item] of Object.entries(value)) {
        fields.push([key, typeof item === "string" ? item : JSON.stringify(item, null, 1)]);
      }
    }
    const list = writing.querySelector(".writing-fields");
    list.replaceChildren(
      ...fields.map(([key, item]) => {
        const row = document.createElement("div");
        const dt = document.createElement("dt");
        const dd = document.createElement("dd");
        dt.textContent = key;
        dd.textContent = item;
        row.append(dt, dd);
        return row;
      }),
    );
    const shown = fields.length ? "" : typeof value === "string" ? value : data.text;
    writing.querySelector(".writing-text").textContent = shown;
    writing.querySelector(".idx").textContent = `#${data.version}`;
    writing.dataset.version = String(data.version);
    writing.hidden = false;
  }
  function recorded(event) {
    const index = Number(event.lastEventId);
    if (Number.isInteger(index) && index + 1 > over) over = index + 1;
    if (writing && Number(writing.dataset.version) < over) writing.hidden = true;
  }
  // The sub-threads' streams: one per sub-thread shown at work, closed once it no longer is.
  const substreams = new Map();
  function follow() {
    if (!stream) return;
    const wanted = new Map();
    for (const el of live.querySelectorAll("[data-substream][data-substream-key]")) {
      wanted.set(el.dataset.substreamKey, el.dataset.substream);
    }
    for (const [key, source] of substreams) {
      if (!wanted.has(key)) {
        source.close();
        substreams.delete(key);
      }
    }
    for (const [key, url] of wanted) if (!substreams.has(key)) substreams.set(key, listen(url));
  }

  if (stream) {
    const source = listen(stream);
    source.addEventListener("delta", write);
    source.addEventListener("model_call", recorded);
    source.addEventListener("error", (event) => event instanceof MessageEvent && recorded(event));
    follow();
    window.addEventListener("pagehide", () => {
      source.close();
      for (const sub of substreams.values()) sub.close();
    });
  } else {
    setInterval(() => document.hidden || refresh(), poll);
    document.addEventListener("visibilitychange", () => document.hidden || changed());
  }
  document.getElementById("live-note")?.removeAttribute("hidden");
})();
