// marc serve: the pages' behaviour, vanilla JavaScript (no framework, no build step, no CDN).
// Each page's <body data-page="..."> picks its part below; everything else is server-rendered.
"use strict";

// ------------------------------------------------------------------------------------ helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(url, options) {
  const res = await fetch(url, options);
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const detail = body && (body.error || body.detail);
    throw new Error(typeof detail === "string" ? detail : `${res.status} ${res.statusText}`);
  }
  return body;
}

// Times are shown in UTC, as the archive stores them and the command line prints them.
function clock(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "";
}

function secs(s) {
  return `${Number(s).toFixed(1)} s`;
}

// A video element showing seconds [start, end) of a recording: seeks there once it can.
function clipPlayer(videoId, start, end) {
  const video = el("video", {
    src: `/media/video/${encodeURIComponent(videoId)}#t=${start.toFixed(3)},${end.toFixed(3)}`,
    controls: true, muted: true, playsinline: true, preload: "auto", class: "clip",
  });
  video.muted = true;
  seekAndPlay(video, start);
  return video;
}

function seekAndPlay(video, start) {
  const go = () => {
    if (Math.abs(video.currentTime - start) > 0.25) video.currentTime = start;
    video.play().catch(() => {});  // autoplay refused: the controls are there
  };
  if (video.readyState >= 1) go();
  else video.addEventListener("loadedmetadata", go, { once: true });
}

// Cards for events (search hits, evidence): thumbnail, camera, time, score, play, open.
function eventCard(hit, { play = false } = {}) {
  const missing = hit.missing;
  const media = el("img", { src: `/media/thumb/${encodeURIComponent(hit.id)}`, alt: `${hit.camera} ${clock(hit.start_at)}`, loading: "lazy" });
  const meta = el("div", { class: "meta" },
    el("b", { text: hit.camera || "(no camera)" }),
    el("span", { text: `${clock(hit.start_at)} · ${secs(hit.start_s)}–${secs(hit.end_s)}` }),
    hit.score !== undefined ? el("span", { class: "muted", text: ` · score ${hit.score.toFixed(3)}` }) : null,
    missing ? el("div", { class: "error", text: `missing: ${missing}` }) : null,
  );
  if (!play) {
    return el("a", { class: "card", href: `/event/${encodeURIComponent(hit.id)}`, "data-event": hit.id }, media, meta);
  }
  const card = el("div", { class: "card", "data-event": hit.id }, media, meta);
  const actions = el("div", { class: "actions" });
  if (!missing && hit.video_id) {
    actions.append(el("button", {
      type: "button", class: "play", text: "▶ Play clip",
      onclick: () => {
        const player = clipPlayer(hit.video_id, hit.start_s, hit.end_s);
        card.querySelector("img, video").replaceWith(player);
      },
    }));
  }
  actions.append(el("a", { href: `/event/${encodeURIComponent(hit.id)}`, text: "Open event" }));
  card.append(actions);
  return card;
}

// ----------------------------------------------------------------------------------- timeline
const TICKS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400];

async function timelinePage() {
  const box = document.getElementById("timeline");
  let videos, events;
  try {
    [videos, events] = await Promise.all([api("/api/videos"), api("/api/events")]);
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", text: e.message }));
    return;
  }
  if (!videos.length) {
    box.replaceChildren(el("p", { class: "muted", text: "No videos yet: run marc ingest FOLDER, then reload." }));
    return;
  }
  const t = (iso) => Date.parse(iso) / 1000;
  const cameras = [...new Set(videos.map((v) => v.camera))].sort();
  const times = [];
  for (const v of videos) if (v.start_at) times.push(t(v.start_at), t(v.end_at || v.start_at));
  for (const e of events) times.push(t(e.start_at), t(e.end_at));
  const t0 = Math.floor(Math.min(...times) / 60) * 60;
  const t1 = Math.max(...times);
  const width = () => Math.max(box.clientWidth - 160, 300);
  const fit = () => (width() - 24) / Math.max(t1 - t0, 60);  // no scroll bar when it all fits
  let scale = fit();  // pixels per second

  function draw() {
    const span = Math.max(t1 - t0, 60);
    const lane = Math.max(width(), Math.ceil(span * scale) + 20);
    const step = TICKS.find((s) => s * scale >= 90) || TICKS[TICKS.length - 1];
    const axis = el("div", { class: "tl-axis", style: `width:${lane}px` });
    for (let s = Math.ceil(t0 / step) * step; s <= t0 + lane / scale; s += step) {
      const label = new Date(s * 1000).toISOString();
      const text = step >= 86400 ? label.slice(0, 10) : step >= 60 ? label.slice(11, 16) : label.slice(11, 19);
      axis.append(el("div", { class: "tl-tick", style: `left:${(s - t0) * scale}px`, text }));
    }
    const rows = cameras.map((camera) => {
      const lanes = el("div", { class: "tl-lane", style: `width:${lane}px` });
      for (const v of videos.filter((v) => v.camera === camera && v.start_at)) {
        const left = (t(v.start_at) - t0) * scale;
        const w = Math.max(((v.end_at ? t(v.end_at) : t(v.start_at)) - t(v.start_at)) * scale, 2);
        lanes.append(el("div", {
          class: `tl-rec s-${v.state}`, style: `left:${left}px;width:${w}px`, "data-video": v.id,
          title: `${v.path}\n${clock(v.start_at)} · ${v.state}${v.error ? ": " + v.error : ""}\n(click: zoom to this recording)`,
          onclick: () => zoomTo(t(v.start_at), v.end_at ? t(v.end_at) : t(v.start_at) + 60),
        }));
      }
      for (const e of events.filter((e) => e.camera === camera)) {
        const left = (t(e.start_at) - t0) * scale;
        const w = Math.max((t(e.end_at) - t(e.start_at)) * scale - 1, 3);
        lanes.append(el("a", {
          class: `tl-ev b-${e.boundary}`, href: `/event/${encodeURIComponent(e.id)}`,
          style: `left:${left}px;width:${w}px`, "data-event": e.id,
          title: `${camera} ${clock(e.start_at)} (${secs(e.start_s)}–${secs(e.end_s)} of ${e.video.split("/").pop()}) · ${e.boundary}`,
        }));
      }
      return el("div", { class: "tl-row", "data-camera": camera },
        el("div", { class: "tl-label", title: camera, text: camera || "(none)" }), lanes);
    });
    box.replaceChildren(el("div", { class: "tl-inner" }, axis, ...rows));
  }

  function zoomTo(a, b) {  // fit [a, b] (seconds) to the view
    scale = width() / Math.max(b - a, 10);
    draw();
    box.scrollLeft = (a - t0) * scale;
  }

  document.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => {
    const z = b.dataset.zoom;
    if (z === "day") scale = width() / 86400;
    else if (z === "hour") scale = width() / 3600;
    else if (z === "fit") scale = fit();
    else if (z === "in") scale *= 2;
    else if (z === "out") scale /= 2;
    draw();
  }));
  draw();
}

// -------------------------------------------------------------------------------------- event
function eventPage() {
  const box = document.querySelector(".event");
  const video = document.getElementById("player");
  if (video) seekAndPlay(video, Number(box.dataset.start));
}

// ------------------------------------------------------------------------------------- search
function searchPage() {
  const form = document.getElementById("search");
  const status = document.getElementById("search-status");
  const results = document.getElementById("results");
  const drop = document.getElementById("drop");
  const limit = Number(form.dataset.limit);

  function filters() {
    const p = new URLSearchParams({ k: form.k.value || "12" });
    if (form.camera.value) p.append("camera", form.camera.value);
    if (form.since.value) p.set("since", form.since.value);
    if (form.until.value) p.set("until", form.until.value);
    return p;
  }

  async function run(request, what) {
    status.textContent = `Searching for ${what}…`;
    results.replaceChildren();
    try {
      const hits = await request();
      status.textContent = hits.length ? `${hits.length} events matching ${what}, best first` : `No event matches ${what}.`;
      results.replaceChildren(...hits.map((h) => eventCard(h)));
    } catch (e) {
      status.textContent = "";
      results.replaceChildren(el("p", { class: "error", text: e.message }));
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = form.q.value.trim();
    if (!q) return;
    const p = filters();
    p.set("q", q);
    run(() => api(`/api/search?${p}`), `“${q}”`);
  });

  function searchImage(file) {
    if (!file) return;
    if (file.size > limit) {
      results.replaceChildren(el("p", { class: "error", text: `${file.name}: larger than ${Math.round(limit / 1048576)} MiB` }));
      return;
    }
    const type = file.type && file.type.startsWith("image/") ? file.type : "image/unknown";
    run(() => api(`/api/search/image?${filters()}`, { method: "POST", headers: { "Content-Type": type }, body: file }), file.name);
  }

  form.image.addEventListener("change", () => searchImage(form.image.files[0]));
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    searchImage(ev.dataTransfer.files[0]);
  });
}

// ---------------------------------------------------------------------------------------- ask
function askPage() {
  const list = document.getElementById("threads");
  const messages = document.getElementById("messages");
  const progress = document.getElementById("progress");
  const error = document.getElementById("ask-error");
  const form = document.getElementById("ask-form");
  const nodes = [...progress.querySelectorAll("li")].map((li) => li.dataset.node);
  let thread = new URLSearchParams(location.search).get("thread");

  async function loadThreads() {
    const rows = await api("/api/threads");
    list.replaceChildren(...rows.map((r) => el("li", {},
      el("a", {
        href: `/ask?thread=${encodeURIComponent(r.thread)}`, class: r.thread === thread ? "on" : null,
        title: `${r.first_question || ""}\n${clock(r.updated_at)}`, "data-thread": r.thread,
        text: r.first_question || r.thread,
      }))));
  }

  function renderMessage(m, index) {
    if (m.role === "user") return el("div", { class: "msg user", text: m.content });
    const box = el("div", { class: "msg assistant" }, el("div", { class: "answer", text: m.content || "(empty answer)" }));
    const evidence = m.evidence || [];
    if (evidence.length) {
      box.append(el("div", { class: "evidence" }, evidence.map((c) => eventCard(c, { play: true }))));
      box.append(el("details", {},
        el("summary", { text: "Contact sheet" }),
        el("img", { class: "sheet", alt: "contact sheet", loading: "lazy",
          src: `/media/sheet/${encodeURIComponent(thread)}/${index}` })));
    }
    return box;
  }

  async function loadThread() {
    messages.replaceChildren();
    if (!thread) return;
    try {
      const data = await api(`/api/threads/${encodeURIComponent(thread)}`);
      messages.replaceChildren(...data.messages.map(renderMessage));
    } catch (e) {
      messages.replaceChildren(el("p", { class: "error", text: e.message }));
    }
  }

  function mark(done) {  // `done`: the nodes finished so far
    progress.dataset.seen = done.join(" ");
    const next = done.length && done[done.length - 1] === "nothing" ? null : nodes[done.length];
    for (const li of progress.children) {
      li.classList.toggle("done", done.includes(li.dataset.node));
      li.classList.toggle("active", li.dataset.node === next);
    }
  }

  async function ask(question) {
    error.hidden = true;
    messages.append(el("div", { class: "msg user", text: question }));
    progress.hidden = false;
    const done = [];
    mark(done);
    form.querySelector("button").disabled = true;
    try {
      const res = await fetch("/api/ask/stream", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ question, thread }),
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.error || `${res.status} ${res.statusText}`);
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let result = null;
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const kind = (chunk.match(/^event: (.*)$/m) || [])[1];
          const data = JSON.parse((chunk.match(/^data: (.*)$/m) || [, "null"])[1]);
          if (kind === "node") { done.push(data); mark(done); }
          else if (kind === "error") throw new Error(data.error);
          else if (kind === "result") result = data;
        }
      }
      if (!result) throw new Error("the answer stream ended early");
      thread = result.thread;
      history.replaceState(null, "", `/ask?thread=${encodeURIComponent(thread)}`);
      await loadThread();
      await loadThreads();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally {
      form.querySelector("button").disabled = false;
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = form.question.value.trim();
    if (!q) return;
    form.question.value = "";
    ask(q);
  });
  form.question.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
  document.getElementById("new-thread").addEventListener("click", () => {
    thread = null;
    history.replaceState(null, "", "/ask");
    messages.replaceChildren();
    progress.hidden = true;
    loadThreads();
  });
  loadThreads().catch((e) => { error.textContent = e.message; error.hidden = false; });
  loadThread();
}

// ------------------------------------------------------------------------------------- ingest
function ingestPage() {
  const box = document.getElementById("ingest");

  async function refresh() {
    let data;
    try {
      data = await api("/api/ingest");
    } catch (e) {
      box.replaceChildren(el("p", { class: "error", text: e.message }));
      return;
    }
    const parts = [];
    if (!data.runs.length) parts.push(el("p", { class: "muted", text: "No ingest or watch is running." }));
    for (const r of data.runs) {
      const pct = r.total ? Math.round((100 * r.done) / r.total) : 0;
      parts.push(el("table", { class: "run" },
        el("tr", {}, el("th", { text: r.mode === "watch" ? "marc ingest --watch" : "marc ingest" }),
          el("td", { text: `pid ${r.pid} on ${r.host}, since ${clock(r.started_at)}` })),
        el("tr", {}, el("th", { text: "files" }), el("td", {},
          el("div", { class: "bar" }, el("span", { style: `width:${pct}%` })),
          `${r.done} done, ${r.left} left (${r.ingested} ingested, ${r.skipped} skipped, ${r.failed} failed)`)),
        el("tr", {}, el("th", { text: "now" }), el("td", { text: r.current ? `${r.current.path} (${r.current.stage || "starting"})` : "waiting" })),
        el("tr", {}, el("th", { text: "speed" }), el("td", { text: r.frames_per_second ? `${r.frames_per_second.toFixed(1)} frames/s` : "—" })),
      ));
    }
    const st = data.status;
    parts.push(el("p", { text: `${st.videos} videos, ${st.events} events, ${st.vectors} vectors, ${st.failed} failed` }));
    parts.push(el("h2", { text: "Recent failures" }));
    if (!data.failures.length) parts.push(el("p", { class: "muted", text: "None." }));
    else parts.push(el("table", { class: "failures" },
      el("tr", {}, el("th", { text: "file" }), el("th", { text: "camera" }), el("th", { text: "error" })),
      data.failures.map((f) => el("tr", {}, el("td", { class: "path", text: f.path }), el("td", { text: f.camera }), el("td", { text: f.error || "" })))));
    box.replaceChildren(...parts);
  }
  refresh();
  setInterval(refresh, 1000);
}

const PAGES = { timeline: timelinePage, event: eventPage, search: searchPage, ask: askPage, ingest: ingestPage };
(PAGES[document.body.dataset.page] || (() => {}))();
