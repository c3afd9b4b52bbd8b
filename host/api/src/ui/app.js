// Prelabel's review UI: plain DOM over the JSON API (docs/api.md), no framework, no build
// step. Views are chosen by the URL's hash; live updates come from /api/events and redraw
// the current view.
"use strict";

const view = document.getElementById("view");
let current = null; // { key(event) } of the view on screen, set once it is drawn
// Who is logged in (GET /api/me): name, role, the datasets they see, the CSRF value.
let me = null;
const can = {
  review: () => me && me.role !== "viewer",
  maintain: () => me && (me.role === "admin" || me.role === "maintainer"),
};

async function api(path, options = {}) {
  const init = { ...options, headers: { ...(options.headers || {}) } };
  // The session cookie goes with every request; a change also carries the CSRF value, which a
  // page of another site cannot read.
  if (init.method && init.method !== "GET" && me && me.csrf) init.headers["x-csrf-token"] = me.csrf;
  if (init.body !== undefined && typeof init.body !== "string" && !(init.body instanceof FormData)) {
    init.body = JSON.stringify(init.body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch("/api" + path, init);
  if (response.status === 401 && path !== "/login") return loginView();
  const text = await response.text();
  const body = text && (response.headers.get("content-type") || "").includes("json") ? JSON.parse(text) : text;
  if (!response.ok) throw new Error((body && body.error) || response.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the page's CSP
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function toast(message, error = false) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = error ? "error" : "";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 3000);
}

async function guarded(action) {
  try { await action(); } catch (e) { toast(e.message, true); }
}

const size = (item) => {
  const s = item.metadata && item.metadata.system;
  return s && s.width && s.height ? [s.width, s.height] : null;
};
const thumb = (item, side) => `/api/items/${item.id}/thumbnail?size=${side}&v=${item.digest}`;
const confidence = (a) => (a.model && typeof a.model.confidence === "number" ? a.model.confidence : 1);

// Boxes drawn over an image in the image's own pixels (the SVG's viewBox is the original size).
function overlay(item, annotations, options = {}) {
  const [w, h] = size(item) || [1, 1];
  const svg = svgEl("svg", { class: "boxes", viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none" });
  annotations.forEach((a, index) => {
    const g = a.geometry;
    if (g.type !== "box") return;
    const rect = svgEl("rect", {
      x: g.left, y: g.top, width: Math.max(g.right - g.left, 1), height: Math.max(g.bottom - g.top, 1),
      class: a.review + (options.selected === index ? " selected" : ""), "data-index": index,
    });
    svg.append(rect);
    if (options.labels) {
      const text = svgEl("text", { x: g.left + 3, y: Math.max(g.top - 4, 12) });
      text.textContent = `${a.label} ${confidence(a).toFixed(2)}`;
      svg.append(text);
    }
  });
  return svg;
}

// Logging in --------------------------------------------------------------------------------

// The login form: a name and password start a session (an HttpOnly cookie the page never sees).
function loginView() {
  me = null;
  who();
  const name = el("input", { name: "name", placeholder: "name", autocomplete: "username" });
  const password = el("input", { name: "password", type: "password", placeholder: "password", autocomplete: "current-password" });
  view.replaceChildren(el("h1", {}, "Log in"), el("form", { class: "inline", id: "login", onsubmit: (e) => {
    e.preventDefault();
    guarded(async () => {
      me = await api("/login", { method: "POST", body: { name: name.value, password: password.value } });
      start();
    });
  } }, name, password, el("button", {}, "Log in")));
  name.focus();
  throw new Error("log in first");
}

// Who is logged in, in the header, and the pages their role has any use for.
function who() {
  const span = document.getElementById("who");
  span.replaceChildren(...(me ? [`${me.name} (${me.role})`, me.open ? "" : el("a", { href: "#", id: "logout", onclick: (e) => {
    e.preventDefault();
    guarded(async () => { await api("/logout", { method: "POST" }); loginView(); });
  } }, "Log out")] : []));
  for (const page of ["executions", "services", "triggers"]) {
    const link = document.querySelector(`nav a[data-nav="${page}"]`);
    link.hidden = !can.maintain();
  }
}

// Datasets ----------------------------------------------------------------------------------

async function datasetsView() {
  const datasets = await api("/datasets");
  view.replaceChildren(
    el("h1", {}, "Datasets"),
    datasets.length
      ? el("div", { class: "cards" }, datasets.map((d) =>
          el("div", { class: "card", onclick: () => (location.hash = `#/dataset/${encodeURIComponent(d.name)}`) },
            el("strong", {}, d.name), el("div", {}, `${d.items} items`))))
      : el("p", {}, can.maintain() ? "No datasets yet: upload with `prelabel upload FILES --dataset D` or below." : "No dataset is granted to you yet."),
    can.maintain() ? uploadForm() : "",
  );
}

function uploadForm(dataset) {
  const files = el("input", { type: "file", multiple: true, accept: "image/*" });
  const name = el("input", { placeholder: "dataset", value: dataset || "" });
  return el("form", { class: "inline", id: "upload", onsubmit: (e) => {
    e.preventDefault();
    guarded(async () => {
      const form = new FormData();
      for (const f of files.files) form.append("file", f, f.name);
      const done = await api(`/datasets/${encodeURIComponent(name.value)}/items`, { method: "POST", body: form });
      toast(`uploaded ${done.length} files; ${done.reduce((n, u) => n + u.queued, 0)} executions queued`);
      files.value = "";
      render();
    });
  } }, "Upload:", files, name, el("button", { type: "submit" }, "Upload"));
}

const filters = { label: "", min: 0, max: 1, review: "", sort: "confidence" };

async function datasetView(dataset) {
  const items = await api(`/datasets/${encodeURIComponent(dataset)}/export?format=json`);
  const labels = [...new Set(items.flatMap((i) => i.annotations.map((a) => a.label)))].sort();
  const shown = items
    .map(({ item, annotations }) => ({
      item,
      annotations: annotations.filter((a) =>
        (!filters.label || a.label === filters.label) &&
        confidence(a) >= filters.min && confidence(a) <= filters.max &&
        (!filters.review || a.review === filters.review)),
      all: annotations,
    }))
    .filter((i) => !(filters.label || filters.review || filters.min > 0 || filters.max < 1) || i.annotations.length);
  const lowest = (i) => Math.min(...i.annotations.map(confidence), 2);
  shown.sort(filters.sort === "confidence" ? (a, b) => lowest(a) - lowest(b) : (a, b) => a.item.name.localeCompare(b.item.name));
  sessionStorage.setItem("order", JSON.stringify(shown.map((i) => i.item.id)));
  const set = (key) => (e) => { filters[key] = e.target.type === "number" ? Number(e.target.value) : e.target.value; render(); };
  view.replaceChildren(
    el("h1", {}, `Dataset ${dataset}`),
    el("div", { class: "toolbar" },
      el("label", {}, "Label ", el("select", { onchange: set("label") }, el("option", { value: "" }, "any"),
        labels.map((l) => el("option", { value: l, selected: l === filters.label }, l)))),
      el("label", {}, "Confidence ", el("input", { type: "number", step: "0.05", min: 0, max: 1, value: filters.min, onchange: set("min"), style: "width:5em" }),
        " to ", el("input", { type: "number", step: "0.05", min: 0, max: 1, value: filters.max, onchange: set("max"), style: "width:5em" })),
      el("label", {}, "Review ", el("select", { onchange: set("review") }, el("option", { value: "" }, "any"),
        ["pending", "accepted", "rejected", "edited", "manual"].map((r) => el("option", { value: r, selected: r === filters.review }, r)))),
      el("label", {}, "Sort ", el("select", { onchange: set("sort") },
        el("option", { value: "confidence", selected: filters.sort === "confidence" }, "lowest confidence first"),
        el("option", { value: "name", selected: filters.sort === "name" }, "name"))),
      el("span", {}, `${shown.length} of ${items.length} items`)),
    el("div", { class: "grid", id: "grid" }, shown.map(({ item, annotations, all }) => {
      const image = size(item);
      return el("div", { class: "tile", "data-item": item.id, onclick: () => (location.hash = `#/item/${item.id}`) },
        el("div", { class: "frame" },
          image ? el("img", { src: thumb(item, 320), alt: item.name, loading: "lazy" }) : el("div", { class: "meta" }, item.mimetype),
          image ? overlay(item, annotations) : ""),
        el("div", { class: "meta" }, el("span", {}, item.name),
          el("span", { class: "count" }, `${annotations.length}/${all.length} · ${annotations.length ? lowest({ annotations }).toFixed(2) : "-"}`)));
    })),
    can.maintain() ? uploadForm(dataset) : "",
  );
}

// Item --------------------------------------------------------------------------------------

const undo = [];
let selected = null;
let dragging = false; // a live redraw waits until the mouse lets go

async function itemView(id, drawing) {
  const [item, annotations, executions, paths] = await Promise.all([
    api(`/items/${id}`), api(`/items/${id}/annotations`), api(`/executions?item=${id}&limit=20`),
    api(`/items/${id}/pipelines`),
  ]);
  if (selected !== null && selected >= annotations.length) selected = null;
  const order = JSON.parse(sessionStorage.getItem("order") || "[]");
  const at = order.indexOf(Number(id));
  const go = (step) => { const next = order[at + step]; if (next !== undefined) { selected = null; location.hash = `#/item/${next}`; } };
  const review = (index, change) => guarded(async () => {
    const a = annotations[index];
    // Undo puts back what the change replaced: the state, or (after an edit, or for a box a
    // person made) the label and geometry.
    const person = a.review === "edited" || a.review === "manual";
    undo.push({ id: a.id, before: change.state && !person ? { state: a.review } : { label: a.label, geometry: a.geometry } });
    await api(`/annotations/${a.id}`, { method: "PATCH", body: { ...change, by: "web" } });
    render();
  });
  const image = el("img", { src: thumb(item, 1600), alt: item.name, draggable: "false" });
  const svg = overlay(item, annotations, { selected, labels: true });
  const stage = el("div", { class: "stage", id: "stage" }, image, svg);
  if (can.review()) editing(stage, svg, item, annotations, review, id);
  const a = selected !== null ? annotations[selected] : null;
  view.replaceChildren(
    el("h1", {}, el("a", { href: `#/dataset/${encodeURIComponent(item.dataset)}` }, item.dataset), ` / ${item.name}`),
    el("div", { class: "item" }, stage,
      el("div", { class: "side" },
        el("div", { class: "toolbar" },
          el("button", { onclick: () => go(-1), disabled: at <= 0 }, "◀ prev"),
          el("button", { onclick: () => go(1), disabled: at < 0 || at >= order.length - 1 }, "next ▶"),
          can.review() ? el("button", { id: "accept-all", onclick: () => guarded(async () => {
            for (const b of annotations.filter((b) => b.review === "pending")) await api(`/annotations/${b.id}`, { method: "PATCH", body: { state: "accepted", by: "web" } });
            render();
          }) }, "Accept all") : ""),
        el("ul", { id: "annotations" }, annotations.map((b, i) =>
          el("li", { class: `${b.review}${i === selected ? " selected" : ""}`, onclick: () => { selected = i; render(); } },
            `${b.label} ${confidence(b).toFixed(2)} · ${b.review}`))),
        a ? el("div", { id: "provenance" },
          can.review() ? el("div", { class: "toolbar" },
            el("button", { id: "accept", onclick: () => review(selected, { state: "accepted" }) }, "Accept (a)"),
            el("button", { id: "reject", onclick: () => review(selected, { state: "rejected" }) }, "Reject (r)"),
            el("button", { onclick: () => { const label = prompt("Label", a.label); if (label) review(selected, { label }); } }, "Relabel (l)")) : "",
          el("table", {}, [
            ["service", a.service || "drawn by a person"], ["package", a.package ? `${a.package} revision ${a.revision}` : "-"],
            ["component", a.component_digest ? a.component_digest.slice(0, 16) + "…" : "-"],
            ["model", a.model.name ? `${a.model.name} ${a.model.version}` : "-"], ["execution", a.execution_id ?? "-"],
            ["review", `${a.review}${a.reviewed_by ? ` by ${a.reviewed_by}` : ""}`],
          ].map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))) : "",
        el("p", { class: "keys" }, "Keys: ←/→ or j/k item · Tab box · a accept · r or Delete reject · A accept all · l relabel · z undo · drag a box to move it, its corner to resize · shift-drag to draw"),
        el("h3", {}, "Executions"),
        el("table", { id: "executions" }, executions.executions.map((e) => el("tr", {},
          el("td", {}, e.service), el("td", { class: `status-${e.status}` }, e.status), el("td", {}, e.duration_ms ?? "")))),
        paths.length ? el("h3", {}, "Pipelines") : "",
        el("div", { id: "paths" }, paths.map(pathView))),
    ),
  );
  drawing.key = (e) => {
    if (e.target.tagName === "INPUT") return;
    const keys = {
      ArrowLeft: () => go(-1), k: () => go(-1), ArrowRight: () => go(1), j: () => go(1),
      a: () => selected !== null && review(selected, { state: "accepted" }),
      r: () => selected !== null && review(selected, { state: "rejected" }),
      Delete: () => selected !== null && review(selected, { state: "rejected" }),
      A: () => document.getElementById("accept-all").click(),
      l: () => selected !== null && document.querySelector("#provenance button:nth-child(3)").click(),
      Tab: () => { selected = annotations.length ? ((selected ?? -1) + 1) % annotations.length : null; render(); },
      z: () => { const last = undo.pop(); if (last) guarded(async () => { await api(`/annotations/${last.id}`, { method: "PATCH", body: { ...last.before, by: "web" } }); render(); }); },
    };
    // A viewer moves between items and selects boxes; changing them is a reviewer's.
    const moves = ["ArrowLeft", "k", "ArrowRight", "j", "Tab"];
    if (keys[e.key] && (can.review() || moves.includes(e.key))) { e.preventDefault(); keys[e.key](); }
  };
}

// Move and resize the selected box; shift-drag draws a new one.
function editing(stage, svg, item, annotations, review, id) {
  const [w, h] = size(item) || [1, 1];
  const point = (e) => {
    const r = svg.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * w, ((e.clientY - r.top) / r.height) * h];
  };
  if (selected !== null && annotations[selected].geometry.type === "box") {
    const g = annotations[selected].geometry;
    svg.append(svgEl("rect", { class: "handle", x: g.right - 6, y: g.bottom - 6, width: 12, height: 12, "data-handle": "1" }));
  }
  let drag = null;
  svg.addEventListener("mousedown", (e) => {
    const [x, y] = point(e);
    const index = e.target.getAttribute("data-index");
    if (e.shiftKey || index === null && !e.target.getAttribute("data-handle")) {
      if (!e.shiftKey) { selected = null; render(); return; }
      drag = { mode: "draw", from: [x, y] };
    } else if (e.target.getAttribute("data-handle")) {
      drag = { mode: "resize", from: [x, y], geometry: { ...annotations[selected].geometry } };
    } else {
      selected = Number(index);
      drag = { mode: "move", from: [x, y], geometry: { ...annotations[selected].geometry }, moved: false };
    }
    dragging = true;
    e.preventDefault();
  });
  window.onmousemove = (e) => {
    if (!drag) return;
    const [x, y] = point(e);
    const [dx, dy] = [x - drag.from[0], y - drag.from[1]];
    const rect = drag.mode === "draw" ? (drag.rect ||= svg.appendChild(svgEl("rect", { class: "manual" })))
      : svg.querySelector(`rect[data-index="${selected}"]`);
    if (!rect) return;
    let g;
    if (drag.mode === "move") g = { left: drag.geometry.left + dx, top: drag.geometry.top + dy, right: drag.geometry.right + dx, bottom: drag.geometry.bottom + dy };
    else if (drag.mode === "resize") g = { ...drag.geometry, right: Math.max(drag.geometry.left + 2, drag.geometry.right + dx), bottom: Math.max(drag.geometry.top + 2, drag.geometry.bottom + dy) };
    else g = { left: Math.min(drag.from[0], x), top: Math.min(drag.from[1], y), right: Math.max(drag.from[0], x), bottom: Math.max(drag.from[1], y) };
    drag.moved = drag.moved || Math.abs(dx) + Math.abs(dy) > 2;
    drag.result = g;
    rect.setAttribute("x", g.left); rect.setAttribute("y", g.top);
    rect.setAttribute("width", Math.max(g.right - g.left, 1)); rect.setAttribute("height", Math.max(g.bottom - g.top, 1));
  };
  window.onmouseup = () => {
    if (!drag) return;
    const d = drag;
    drag = null;
    dragging = false;
    const clamp = (g) => ({ type: "box", left: Math.max(0, g.left), top: Math.max(0, g.top), right: Math.min(w, g.right), bottom: Math.min(h, g.bottom) });
    if (d.mode === "draw" && d.result && d.moved) {
      const label = prompt("Label of the new box", annotations[0] ? annotations[0].label : "face");
      if (!label) return render();
      guarded(async () => { await api(`/items/${id}/annotations`, { method: "POST", body: { label, geometry: clamp(d.result), by: "web" } }); render(); });
    } else if (d.result && d.moved) {
      review(selected, { geometry: clamp(d.result) });
    } else {
      render();
    }
  };
}

// Pipelines and review tasks ---------------------------------------------------------------

// Completes or discards an item a review task holds; the item goes on in its pipeline.
const decide = (task, item, outcome) => guarded(async () => {
  const d = await api(`/tasks/${encodeURIComponent(task)}/items/${item}/${outcome === "completed" ? "complete" : "discard"}`,
    { method: "POST", body: { by: "web" } });
  toast(`${outcome} item ${item}: ${d.queued} executions queued after it`);
  render();
});

// One run an item took part in: the nodes its path entered, each with its state.
function pathView(run) {
  return el("div", { class: "path" },
    el("a", { href: `#/pipeline/${encodeURIComponent(run.pipeline)}` }, `${run.pipeline} v${run.version}`), ": ",
    run.steps.map((s, i) => el("span", {}, i ? " → " : "",
      el("span", { class: `step status-${s.state}`, title: s.error || (s.decided_by ? `${s.outcome} by ${s.decided_by}` : "") },
        `${s.node} ${s.outcome || s.state}`),
      s.state === "waiting" && s.task && can.review() ? el("span", {},
        el("button", { class: "complete", onclick: () => decide(s.task, s.item, "completed") }, "Complete"),
        el("button", { class: "discard", onclick: () => decide(s.task, s.item, "discarded") }, "Discard")) : "")));
}

async function pipelinesView() {
  const pipelines = await api("/pipelines");
  view.replaceChildren(
    el("h1", {}, "Pipelines"),
    pipelines.length ? el("table", {},
      el("tr", {}, ["pipeline", "version", "nodes", "state", "description"].map((h) => el("th", {}, h))),
      pipelines.map((p) => el("tr", {},
        el("td", {}, el("a", { href: `#/pipeline/${encodeURIComponent(p.name)}` }, p.name)), el("td", {}, p.version),
        el("td", {}, p.spec.nodes.length), el("td", {}, p.paused ? "paused" : "active"), el("td", {}, p.spec.description))))
      : el("p", {}, "No pipelines yet: `prelabel pipeline apply pipeline.toml` (docs/pipelines.md)."),
  );
}

// What an edge's condition asks, in a few words.
function condition(when = {}) {
  const parts = [];
  if (when.outcome) parts.push(when.outcome);
  if (when.labels && when.labels.length) parts.push(when.labels.join("|"));
  if (when.min_confidence !== undefined) parts.push(`≥${when.min_confidence}`);
  if (when.max_confidence !== undefined) parts.push(`≤${when.max_confidence}`);
  if (when.min_count !== undefined) parts.push(`count ≥${when.min_count}`);
  if (when.max_count !== undefined) parts.push(`count ≤${when.max_count}`);
  return parts.join(" ");
}

// A pipeline as its graph: the nodes in columns by their distance from the source, each with
// what waits, runs, is done and failed there; redrawn live as steps move.
async function pipelineView(name) {
  const shown = await api(`/pipelines/${encodeURIComponent(name)}`);
  const { nodes, edges } = shown.spec;
  const depth = {};
  const visit = (id, d) => {
    if ((depth[id] ?? -1) >= d) return;
    depth[id] = d;
    edges.filter((e) => e.from === id).forEach((e) => visit(e.to, d + 1));
  };
  visit(nodes.find((n) => n.kind === "source").id, 0);
  const [W, H, GX, GY] = [230, 78, 90, 26];
  const rows = {};
  const at = {};
  for (const n of nodes) {
    const col = depth[n.id] ?? 0;
    const row = (rows[col] = (rows[col] ?? -1) + 1);
    at[n.id] = [20 + col * (W + GX), 20 + row * (H + GY)];
  }
  const width = 40 + (Math.max(...Object.values(depth)) + 1) * (W + GX);
  const height = 40 + (Math.max(...Object.values(rows)) + 1) * (H + GY);
  const svg = svgEl("svg", { class: "graph", id: "graph", viewBox: `0 0 ${width} ${height}`, width, height });
  for (const e of edges) {
    const [[x1, y1], [x2, y2]] = [at[e.from], at[e.to]];
    const [ax, ay, bx, by] = [x1 + W, y1 + H / 2, x2, y2 + H / 2];
    svg.append(svgEl("path", { class: "edge", d: `M${ax},${ay} C${ax + GX / 2},${ay} ${bx - GX / 2},${by} ${bx},${by}` }));
    const label = condition(e.when);
    if (label) {
      const t = svgEl("text", { class: "when", x: (ax + bx) / 2, y: (ay + by) / 2 - 4, "text-anchor": "middle" });
      t.textContent = label;
      svg.append(t);
    }
  }
  const counts = Object.fromEntries(shown.nodes.map((c) => [c.node, c]));
  for (const n of nodes) {
    const [x, y] = at[n.id];
    const c = counts[n.id] || {};
    const what = n.service ? `${n.service}.${n.function}` : n.dataset || n.task || "all datasets";
    const g = svgEl("g", { class: `node ${n.kind}`, "data-node": n.id });
    g.append(svgEl("rect", { x, y, width: W, height: H, rx: 6 }));
    const lines = [[`${n.id}`, "name"], [`${n.kind}: ${what}`, "what"],
      [n.kind === "source" ? "" : `wait ${c.waiting ?? 0} · run ${c.running ?? 0} · done ${c.done ?? 0} · fail ${c.failed ?? 0}`, "counts"]];
    lines.forEach(([text, cls], i) => {
      const t = svgEl("text", { x: x + 8, y: y + 20 + i * 22, class: cls });
      t.textContent = text;
      g.append(t);
    });
    const target = n.kind === "task" ? `#/task/${encodeURIComponent(n.task)}` : n.kind === "dataset" ? `#/dataset/${encodeURIComponent(n.dataset)}` : null;
    if (target) g.addEventListener("click", () => (location.hash = target));
    svg.append(g);
  }
  view.replaceChildren(
    el("h1", {}, el("a", { href: "#/pipelines" }, "Pipelines"), ` / ${name} v${shown.version}${shown.paused ? " (paused)" : ""}`),
    shown.spec.description ? el("p", {}, shown.spec.description) : "",
    el("div", { class: "graph-frame" }, svg),
    el("p", { class: "keys" }, "wait: queued, or held by a review task · run: running · done · fail: failed (a rerun resumes the path there)"),
  );
}

async function tasksView() {
  const tasks = await api("/tasks");
  view.replaceChildren(
    el("h1", {}, "Review tasks"),
    tasks.length ? el("table", { id: "tasks" },
      el("tr", {}, ["task", "waiting", "completed", "discarded", "assigned to", "QA", "pipelines"].map((h) => el("th", {}, h))),
      tasks.map((t) => el("tr", { class: t.assignees.includes(me && me.name) ? "yours" : "" },
        el("td", {}, el("a", { href: `#/task/${encodeURIComponent(t.name)}` }, t.name), t.done ? " ✓" : ""), el("td", {}, t.waiting),
        el("td", {}, t.completed), el("td", {}, t.discarded), el("td", {}, t.assignees.join(", ") || "anyone"),
        el("td", {}, t.qa_percent ? `${t.qa_percent}%` : ""),
        el("td", {}, t.pipelines.join(", ")))))
      : el("p", {}, "No review tasks: a pipeline's task node makes one (docs/pipelines.md)."),
  );
}

// The items a task holds, oldest first, each with its boxes and the two decisions.
async function taskView(name) {
  const [task, held, decided] = await Promise.all([
    api(`/tasks/${encodeURIComponent(name)}`), api(`/tasks/${encodeURIComponent(name)}/items`),
    api(`/tasks/${encodeURIComponent(name)}/items?decided=true&limit=20`),
  ]);
  const boxes = await Promise.all(held.map((h) => api(`/items/${h.item.id}/annotations`)));
  sessionStorage.setItem("order", JSON.stringify(held.map((h) => h.item.id)));
  const account = me && me.role !== "viewer" && !me.open;
  const mine = account ? await mineView(name) : null;
  view.replaceChildren(
    el("h1", {}, el("a", { href: "#/tasks" }, "Tasks"), ` / ${name}`),
    el("p", {}, `${task.waiting} waiting · ${task.completed} completed · ${task.discarded} discarded · from ${task.pipelines.join(", ") || "no pipeline now"}`),
    task.reviewers.length ? el("table", { id: "progress" },
      el("tr", {}, ["reviewer", "completed", "discarded", "holding", "sent to QA"].map((h) => el("th", {}, h))),
      task.reviewers.map((r) => el("tr", {}, el("td", {}, r.name), el("td", {}, r.completed), el("td", {}, r.discarded),
        el("td", {}, r.holding), el("td", {}, r.sent_to_qa))))
      : "",
    account ? el("div", { id: "mine" }, mine) : "",
    el("div", { class: "grid", id: "held" }, held.map((h, i) => {
      const image = size(h.item);
      return el("div", { class: "tile", "data-item": h.item.id },
        el("div", { class: "frame", onclick: () => (location.hash = `#/item/${h.item.id}`) },
          image ? el("img", { src: thumb(h.item, 320), alt: h.item.name, loading: "lazy" }) : el("div", { class: "meta" }, h.item.mimetype),
          image ? overlay(h.item, boxes[i]) : ""),
        el("div", { class: "meta" }, el("span", {}, h.item.name),
          h.held_by ? el("span", { class: "held" }, `with ${h.held_by}`) : can.review() ? el("span", {},
            el("button", { class: "complete", onclick: () => decide(name, h.item.id, "completed") }, "Complete"),
            el("button", { class: "discard", onclick: () => decide(name, h.item.id, "discarded") }, "Discard")) : ""));
    })),
    decided.length ? el("h3", {}, "Decided") : "",
    el("table", { id: "decided" }, decided.map((h) => el("tr", {},
      el("td", {}, el("a", { href: `#/item/${h.item.id}` }, h.item.name)), el("td", {}, h.outcome),
      el("td", {}, h.decided_by || ""), el("td", {}, h.decided_at || "")))),
  );
}

// "Next item": the server hands this reviewer one item no one else holds; it is shown large,
// with its boxes, and deciding it asks for the next. What each task handed this reviewer is
// kept here (`null`: nothing left), so that a live redraw of the task shows it again.
const holding = {};

async function nextItem(task) {
  const held = await api(`/tasks/${encodeURIComponent(task)}/next`, { method: "POST" }).catch((e) => toast(e.message, true));
  if (held === undefined) return;
  holding[task] = held;
  const mine = await mineView(task);
  document.getElementById("mine").replaceChildren(mine);
}

async function mineView(task) {
  const held = holding[task];
  const next = (label) => el("button", { id: "next", onclick: () => nextItem(task) }, label);
  if (held === undefined) return next("Next item");
  if (!held) return el("p", { id: "none-left" }, "Nothing left for you in this task. ", next("Look again"));
  const boxes = await api(`/items/${held.item.id}/annotations`);
  const image = size(held.item);
  const decideMine = (outcome) => guarded(async () => {
    const d = await api(`/tasks/${encodeURIComponent(task)}/items/${held.item.id}/${outcome}`, { method: "POST", body: {} });
    if (d.sent_to_qa) toast(`${held.item.name}: a second reviewer checks it`);
    await nextItem(task);
  });
  return el("div", { class: "tile mine", "data-item": held.item.id },
    el("div", { class: "frame" },
      image ? el("img", { src: thumb(held.item, 1600), alt: held.item.name }) : el("div", { class: "meta" }, held.item.mimetype),
      image ? overlay(held.item, boxes, { labels: true }) : ""),
    el("div", { class: "meta" }, el("span", { class: "name" }, held.item.name,
      held.first_by ? el("em", { class: "qa" }, ` · a second look: ${held.first_by} completed it`) : ""),
      el("span", {},
        el("button", { class: "complete", onclick: () => decideMine("complete") }, "Complete"),
        el("button", { class: "discard", onclick: () => decideMine("discard") }, "Discard"))));
}

// Executions, services, triggers ------------------------------------------------------------

async function executionsView() {
  const page = await api("/executions?limit=200");
  view.replaceChildren(
    el("h1", {}, `Executions (${page.total})`),
    el("div", { class: "toolbar" }, el("button", { onclick: () => guarded(async () => {
      const r = await api("/executions/rerun", { method: "POST", body: {} });
      toast(`queued ${r.queued.length} again; skipped ${r.skipped}`); render();
    }) }, "Rerun failed")),
    el("table", { id: "executions" },
      el("tr", {}, ["id", "service", "item", "status", "attempts", "ms", "cold start ms", "engine", "error", ""].map((h) => el("th", {}, h))),
      page.executions.map((e) => el("tr", {},
        el("td", {}, e.id), el("td", {}, e.service), el("td", {}, el("a", { href: `#/item/${e.item_id}` }, e.item)),
        el("td", { class: `status-${e.status}` }, e.status), el("td", {}, e.attempts), el("td", {}, e.duration_ms ?? ""),
        el("td", {}, e.cold_start_ms ?? ""), el("td", {}, e.inference_engine || ""), el("td", { class: "error" }, e.error || ""),
        el("td", {}, el("button", { onclick: () => guarded(async () => {
          const logs = await api(`/executions/${e.id}/logs`);
          view.append(el("h3", {}, `Logs of execution ${e.id}`), el("pre", {}, logs || "(none)"));
        }) }, "logs"))))),
  );
}

async function servicesView() {
  const services = await api("/services");
  const post = (path) => guarded(async () => { await api(path, { method: "POST" }); render(); });
  const pkg = el("input", { placeholder: "package" }), name = el("input", { placeholder: "service name" });
  const init = el("input", { placeholder: '{"min_confidence": 0.5}', style: "width:16em" });
  view.replaceChildren(
    el("h1", {}, "Services"),
    el("table", {},
      el("tr", {}, ["service", "package", "revision", "init inputs", "settings", "state", ""].map((h) => el("th", {}, h))),
      services.map((s) => el("tr", {},
        el("td", {}, s.name), el("td", {}, s.package), el("td", {}, s.revision),
        el("td", {}, JSON.stringify(s.init_inputs)),
        el("td", {}, `instances ${s.settings.min_instances} to ${s.settings.concurrency} (idle ${s.settings.idle_ms / 1000} s), timeout ${s.settings.timeout_ms / 1000} s, ${s.settings.memory_mb} MiB` +
          (s.instance_type ? ` (${s.instance_type})` : "") +
          (s.settings.allow_inference ? `, inference on ${s.settings.inference_engine} × ${s.settings.inference_threads}` : "")),
        el("td", {}, s.paused ? "paused" : "active"),
        el("td", {},
          el("button", { onclick: () => post(`/services/${s.name}/${s.paused ? "resume" : "pause"}`) }, s.paused ? "resume" : "pause"),
          el("button", { onclick: () => post(`/services/${s.name}/rollback`) }, "rollback"))))),
    el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); guarded(async () => {
      const d = await api(`/services/${encodeURIComponent(name.value)}`, { method: "PUT", body: { package: pkg.value, init: init.value ? JSON.parse(init.value) : {} } });
      toast(`${d.created ? "created" : "updated"} ${d.service.name}: revision ${d.service.revision}`); render();
    }); } }, "Deploy the latest revision:", pkg, name, init, el("button", { type: "submit" }, "Deploy")),
  );
}

async function triggersView() {
  const triggers = await api("/triggers");
  const name = el("input", { placeholder: "name" }), service = el("input", { placeholder: "service" });
  const filter = el("input", { placeholder: "metadata.system.mimetype=image/*", style: "width:18em" });
  view.replaceChildren(
    el("h1", {}, "Triggers"),
    el("table", {},
      el("tr", {}, ["name", "service", "function", "actions", "dataset", "filters", "mode", ""].map((h) => el("th", {}, h))),
      triggers.map((t) => el("tr", {},
        el("td", {}, t.name), el("td", {}, t.service), el("td", {}, t.function), el("td", {}, t.actions.join(", ")),
        el("td", {}, t.dataset || "any"), el("td", {}, t.filters.join(" AND ")), el("td", {}, t.mode),
        el("td", {}, el("button", { onclick: () => guarded(async () => { await api(`/triggers/${t.name}`, { method: "DELETE" }); render(); }) }, "delete"))))),
    el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); guarded(async () => {
      await api("/triggers", { method: "POST", body: { name: name.value, service: service.value, filters: filter.value ? [filter.value] : [] } });
      render();
    }); } }, "New trigger:", name, service, filter, el("button", { type: "submit" }, "Create")),
  );
}

// Routing and live updates -------------------------------------------------------------------

function route() {
  const [, page, arg] = location.hash.split("/");
  const name = arg && decodeURIComponent(arg);
  const views = {
    dataset: () => datasetView(name), item: (drawing) => itemView(name, drawing), executions: executionsView,
    services: servicesView, triggers: triggersView, pipelines: pipelinesView, pipeline: () => pipelineView(name),
    tasks: tasksView, task: () => taskView(name),
  };
  const nav = { pipeline: "pipelines", task: "tasks" };
  document.querySelectorAll("nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.nav === (nav[page] || (views[page] && page !== "dataset" && page !== "item" ? page : "datasets"))));
  return views[page] || datasetsView;
}

function render() {
  const show = route();
  // Keys go to the view on screen until the next one is drawn: a key pressed just after a
  // click that redraws (select a box, then `a`) is not lost while the new view loads.
  const drawing = { key: null };
  return guarded(async () => {
    await show(drawing);
    current = drawing;
  });
}

window.addEventListener("hashchange", () => { selected = null; render(); });
document.addEventListener("keydown", (e) => current && current.key && current.key(e));

function live() {
  if (live.events) live.events.close();
  const events = new EventSource("/api/events");
  live.events = events;
  const dot = document.getElementById("live");
  let timer = null;
  events.onopen = () => dot.classList.add("on");
  events.onerror = () => dot.classList.remove("on");
  const redraw = () => { clearTimeout(timer); timer = setTimeout(() => (dragging ? redraw() : render()), 300); };
  for (const kind of ["item", "execution", "annotations", "step"]) events.addEventListener(kind, redraw);
}

// Who is this? A token in the page's address (`prelabel serve --open` prints one) logs in as
// it and leaves the address bar; without a session the login form shows.
async function start() {
  const token = new URLSearchParams(location.search).get("token");
  if (token) {
    history.replaceState(null, "", location.pathname + location.hash);
    me = await api("/login", { method: "POST", body: { token } }).catch(() => null);
  }
  me = await api("/me").catch(() => null);
  if (!me) return;
  who();
  live();
  render();
}

start();
