// The station viewer: queue, scan view (zoom, pan, window, heat map, boxes), decisions.
// Plain browser JavaScript, no build step. Every request carries the operator's token, which
// lives in sessionStorage so it is asked once per tab and gone when the tab closes.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("concealscan-token"),
  scans: [], current: null, detail: null,
  shown: null,          // the scan drawn on screen, once all of it has loaded
  pages: 1,             // queue pages shown (newest first)
  currentAt: -1,        // where the scan opened stood in the queue
  images: {},           // view name -> ImageBitmap for the current scan
  slices: 0, z: 0,      // CT scans: number of slices and the one shown
  zoom: 1, panX: 0, panY: 0,
  drawing: false, draft: null, drawnBoxes: [],
};

// ---- HTTP ----------------------------------------------------------------------------------
// ``answered``: statuses besides 2xx whose body the caller reads itself (health's 503).
async function api(path, options = {}, answered = []) {
  const headers = Object.assign({}, options.headers, {Authorization: `Bearer ${state.token}`});
  const response = await fetch(path, Object.assign({}, options, {headers}));
  if (response.status === 401) { logout("Your token was not accepted. Sign in again."); throw new Error("401"); }
  if (!response.ok && !answered.includes(response.status)) {
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON (a proxy's page): status text */ }
    throw new Error(errorText(response, body));
  }
  return response;
}

// ``503: why``, why taken from the body's detail or problems (health's 503 has no detail), else
// the status text: an operator must never read "undefined".
function errorText(response, body) {
  let why = body ? (body.detail ?? body.problems) : null;
  if (Array.isArray(why)) why = why.map((p) => typeof p === "string" ? p : JSON.stringify(p)).join("; ");
  else if (why !== null && why !== undefined && typeof why !== "string") why = JSON.stringify(why);
  return `${response.status}: ${why || response.statusText || "no reason given"}`;
}

async function loadBitmap(url) {
  const blob = await (await api(url)).blob();
  return createImageBitmap(blob);
}

// ---- login ---------------------------------------------------------------------------------
async function login(token) {
  state.token = token;
  const health = await checkHealth();
  sessionStorage.setItem("concealscan-token", token);
  $("login-panel").hidden = true;
  $("app").hidden = false;
  $("operator").textContent = health.operator;
  $("model-version").textContent = health.model.version || "unknown";
  await refreshQueue();
}

// The service's state; a 503 (it cannot store scans: a folder it cannot write, a full disk)
// still signs the operator in, since the queue can be reviewed, with its problems on screen.
async function checkHealth() {
  const response = await api("/api/health", {}, [503]);
  let health = null;
  try { health = await response.json(); } catch (e) { /* not the station's answer */ }
  if (!health || !health.operator) throw new Error(errorText(response, health));
  showProblems(health.problems || []);
  return health;
}

function showProblems(problems) {
  const banner = $("storage-warning");
  banner.textContent = problems.length ? `New scans cannot be stored: ${problems.join("; ")}` : "";
  banner.hidden = !problems.length;
}

function logout(message) {
  sessionStorage.removeItem("concealscan-token");
  state.token = null;
  clearScanView();  // the next operator to sign in sees nothing of this one's work
  $("app").hidden = true;
  $("login-panel").hidden = false;
  $("login-error").textContent = message || "";
  showProblems([]);
}

// What one scan shows, gone: its picture, boxes, slices, decisions and the note typed for it.
function blankScanView() {
  Object.assign(state, {detail: null, images: {}, slices: 0, drawnBoxes: []});
  $("note").value = "";
  $("slice-control").hidden = true;
  $("decisions").replaceChildren();
  $("heat").hidden = true;
  drawBase();
  drawBoxes();
}

function clearScanView() {
  Object.assign(state, {current: null, shown: null});
  blankScanView();
  $("scan-info").replaceChildren();
  $("action-status").textContent = "";
  $("heat").removeAttribute("src");
}

// ---- queue ---------------------------------------------------------------------------------
function stateLabel(scan) {
  if (scan.status === "error") return ["ERROR: manual check", "error"];
  return scan.alarm ? ["ALARM", "alarm"] : ["no alarm", "clear"];
}

const PAGE = 200;  // queue entries per request; "older scans" asks for one more page

async function refreshQueue() {
  const filter = $("filter").value;
  const scans = [];
  let full = true;
  for (let page = 0; page < state.pages && full; page++) {
    const data = await (await api(`/api/scans?limit=${PAGE}&offset=${page * PAGE}` +
                                  `${filter ? "&" + filter : ""}`)).json();
    scans.push(...data.scans);
    full = data.scans.length === PAGE;
  }
  $("more").hidden = !full;  // a full last page: there may be older scans
  state.scans = scans;
  const at = scans.findIndex((s) => s.id === state.current);
  if (at >= 0) state.currentAt = at;  // where J/K move from, should a decision take it out
  const data = {scans};
  const list = $("queue");
  list.replaceChildren();
  for (const scan of data.scans) {
    const item = document.createElement("li");
    const [label, cls] = stateLabel(scan);
    item.dataset.id = scan.id;
    item.dataset.state = cls;
    item.className = cls + (state.current === scan.id ? " selected" : "");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = label;
    const name = document.createElement("span");
    name.textContent = ` ${scan.id} ${scan.kind || ""} `;
    const review = document.createElement("span");
    review.className = "review";
    review.textContent = scan.review;
    item.append(badge, name, review);
    item.addEventListener("click", () => openScan(scan.id));
    list.append(item);
  }
}

async function moveInQueue(step) {
  let ids = state.scans.map((s) => s.id);
  let index = ids.indexOf(state.current);
  // a scan a decision took out of the list: move from the place it held
  if (index < 0 && state.currentAt >= 0) index = step > 0 ? state.currentAt - 1 : state.currentAt;
  if (index + step >= ids.length && !$("more").hidden) {  // past this page: fetch the next
    await loadOlder();
    ids = state.scans.map((s) => s.id);
  }
  const next = ids[Math.min(ids.length - 1, Math.max(0, index + step))];
  if (next && next !== state.current) openScan(next);
}

function loadOlder() {
  state.pages += 1;
  return refreshQueue();
}

// The queue again (or ``reload`` it so), a failure said where the operator looks (not only in
// the console).
function refreshQueueSaying(reload = refreshQueue) {
  return reload().catch((error) => {
    if (state.token) $("action-status").textContent = `queue not refreshed: ${error.message}`;
  });
}

// ---- scan view -----------------------------------------------------------------------------
async function openScan(id) {
  // Everything is loaded first and drawn only if the operator is still on this scan, so a
  // slow scan that arrives after a later one was opened never replaces it on screen, and a
  // decision (`decide`) always goes to the scan that is drawn (`state.shown`).
  state.current = id;
  state.currentAt = state.scans.findIndex((s) => s.id === id);
  state.shown = null;
  setDrawing(false);
  blankScanView();  // nothing of the previous scan stays under this one's name while it loads
  for (const li of $("queue").children) {
    li.classList.toggle("selected", li.dataset.id === id);
    if (li.dataset.id === id) li.scrollIntoView({block: "nearest"});
  }
  const loading = document.createElement("p");
  loading.id = "scan-state";
  loading.textContent = `${id}: loading...`;
  $("scan-info").replaceChildren(loading);
  const path = `/api/scans/${encodeURIComponent(id)}`;
  let detail, heatBlob;
  const images = {};
  try {
    detail = await (await api(path)).json();
    for (const view of ["image.png", "gray.png"]) {
      if (detail.views.includes(view)) images[view] = await loadBitmap(`${path}/${view}`);
    }
    heatBlob = detail.views.includes("heat.png")
      ? await (await api(`${path}/heat.png`)).blob() : null;
  } catch (error) {
    if (state.current === id && state.token) loading.textContent = `${id}: could not be loaded (${error.message}); open it again`;
    return;
  }
  if (state.current !== id) return;  // the operator has moved on
  state.detail = detail;
  state.images = images;
  const heat = $("heat");
  if (heat.src) URL.revokeObjectURL(heat.src);
  heat.removeAttribute("src");
  if (heatBlob) heat.src = URL.createObjectURL(heatBlob);
  showHeat();  // as its box says, for this scan too
  $("win-level").value = 128;  // each scan opens in the full window; the last one's
  $("win-width").value = 255;  // narrow window could hide this one's item
  $("win-organic").hidden = !detail.display_hu;
  showWindowHu();
  state.slices = detail.slices || 0;
  $("slice-control").hidden = state.slices === 0;
  if (state.slices) {
    const first = (detail.result.detections || [])[0];  // the server opens on this slice too
    state.z = first ? Math.floor((first.box3d[2] + first.box3d[5]) / 2) : Math.floor(state.slices / 2);
    state.z = Math.min(state.slices - 1, Math.max(0, state.z));
    $("slice").max = state.slices - 1;
    $("slice").value = state.z;
    $("slice-label").textContent = `${state.z + 1} / ${state.slices}`;
  }
  showInfo(detail);
  resetView();
  drawBase();
  drawBoxes();
  showDecisions(detail.decisions);
  $("confirm").disabled = !detail.alarm;  // nothing to confirm (the API says so too)
  state.shown = id;
  $("viewport").focus();
}

// CT: page through the slices; boxes are those whose z range holds the slice shown.
async function showSlice(z) {
  if (!state.slices || !state.current || state.shown !== state.current) return;
  z = Math.min(state.slices - 1, Math.max(0, z));
  // The slice index moves at once, so that keys pressed faster than slices load all count;
  // a slice that arrives after a later request (or another scan) was made is dropped.
  const scan = state.current;
  state.z = z;
  $("slice").value = z;
  $("slice-label").textContent = `${z + 1} / ${state.slices}`;
  drawBoxes();
  let bitmap;
  try {
    bitmap = await loadBitmap(`/api/scans/${encodeURIComponent(scan)}/slices/${z}`);
  } catch (error) {
    if (state.token) $("action-status").textContent = `slice ${z + 1} could not be loaded: ${error.message}`;
    return;
  }
  if (state.current !== scan || state.z !== z) return;
  state.images["image.png"] = bitmap;
  state.images["gray.png"] = bitmap;
  drawBase();
}

function showInfo(detail) {
  const info = $("scan-info");
  const [label, cls] = stateLabel(detail);
  const line = document.createElement("p");
  line.className = cls;
  line.id = "scan-state";
  line.textContent = `${detail.id}: ${label}` +
    (detail.error ? ` (${detail.error})` : "") +
    ` | model ${detail.model_version || "none"} | review: ${detail.review}`;
  info.replaceChildren(line);
}

function drawBase() {
  const canvas = $("base");
  const view = $("gray-toggle").checked ? "gray.png" : "image.png";
  const bitmap = state.images[view] || state.images["image.png"];
  if (!bitmap) { canvas.width = 0; canvas.height = 0; sizeStage(0, 0); return; }
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  applyWindow(ctx, bitmap.width, bitmap.height);
  sizeStage(bitmap.width, bitmap.height);
}

// CT: the window in Hounsfield units (a slice's grey levels 0..255 span detail.display_hu).
function showWindowHu() {
  const hu = state.detail && state.detail.display_hu;
  $("win-hu").hidden = !hu;
  if (!hu) return;
  const perLevel = (hu[1] - hu[0]) / 255;
  const [lv, wd] = [Number($("win-level").value), Number($("win-width").value)];
  if (lv === 128 && wd === 255) { $("win-hu").textContent = `${hu[0]}..${hu[1]} HU`; return; }
  const level = hu[0] + lv * perLevel, width = wd * perLevel;
  $("win-hu").textContent = `${Math.round(level - width / 2)}..${Math.round(level + width / 2)} HU`;
}

function setWindowHu(lo, hi) {
  const hu = state.detail.display_hu, perLevel = (hu[1] - hu[0]) / 255;
  $("win-level").value = Math.round(((lo + hi) / 2 - hu[0]) / perLevel);
  $("win-width").value = Math.max(1, Math.round((hi - lo) / perLevel));
  drawBase();
  showWindowHu();
}

// Contrast window: values from level - width/2 to level + width/2 stretch to black..white.
function applyWindow(ctx, width, height) {
  const level = Number($("win-level").value), span = Number($("win-width").value);
  if (level === 128 && span === 255) return;
  const lo = level - span / 2, scale = 255 / span;
  const lut = new Uint8ClampedArray(256);
  for (let v = 0; v < 256; v++) lut[v] = (v - lo) * scale;
  const pixels = ctx.getImageData(0, 0, width, height);
  const d = pixels.data;
  for (let i = 0; i < d.length; i += 4) { d[i] = lut[d[i]]; d[i + 1] = lut[d[i + 1]]; d[i + 2] = lut[d[i + 2]]; }
  ctx.putImageData(pixels, 0, 0);
}

function sizeStage(width, height) {
  const svg = $("boxes");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  $("heat").style.width = `${width}px`;
  $("heat").style.height = `${height}px`;
  $("stage").style.width = `${width}px`;
  $("stage").style.height = `${height}px`;
}

function showHeat() {
  const heat = $("heat");
  heat.hidden = !$("heat-toggle").checked || !heat.getAttribute("src");
  heat.style.opacity = Number($("heat-opacity").value) / 100;
}

function svgRect(box, cls, label) {
  const ns = "http://www.w3.org/2000/svg";
  const group = document.createElementNS(ns, "g");
  const [x1, y1, x2, y2] = box;
  const rect = document.createElementNS(ns, "rect");
  rect.setAttribute("x", x1); rect.setAttribute("y", y1);
  rect.setAttribute("width", x2 - x1); rect.setAttribute("height", y2 - y1);
  rect.setAttribute("class", cls);
  group.append(rect);
  if (label) {
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", x1); text.setAttribute("y", y1);
    text.setAttribute("dy", "-0.3em");  // in font units: the same gap on screen at any zoom
    text.setAttribute("class", cls);
    text.textContent = label;
    group.append(text);
  }
  return group;
}

function drawBoxes() {
  const svg = $("boxes");
  svg.replaceChildren();
  const result = state.detail ? state.detail.result : {};
  // CT boxes: x1, y1, z1, x2, y2, z2 in voxels; drawn on the slice only within z1..z2-1
  const onSlice = ([, , z1, , , z2]) => state.z >= z1 && state.z < z2;
  const footprint = ([x1, y1, , x2, y2]) => [x1, y1, x2, y2];
  (result.detections || []).forEach((det, i) => {  // numbered as in overlay.png
    if (det.box3d && !onSlice(det.box3d)) return;
    svg.append(svgRect(det.box3d ? footprint(det.box3d) : det.box,
                       det.alarm === false ? "candidate" : "detection",
                       `${i + 1}: ${Number(det.score).toFixed(2)}`));
  });
  // missed boxes already saved on this scan (by anyone), so nobody draws one twice
  for (const d of (state.detail && state.detail.decisions) || []) {
    if (d.decision !== "missed") continue;
    for (const box of d.boxes_xyxy) {
      if (box.length === 6 && !onSlice(box)) continue;
      svg.append(svgRect(box.length === 6 ? footprint(box) : box, "drawn saved",
                         `missed (${d.operator})`));
    }
  }
  for (const box of state.drawnBoxes) {
    if (box.length === 6) {  // CT: shown solid on its slices, dashed on the others
      svg.append(svgRect(footprint(box), onSlice(box) ? "drawn" : "drawn elsewhere",
                         `missed, slices ${box[2] + 1}-${box[5]}`));
    } else {
      svg.append(svgRect(box, "drawn", "missed"));
    }
  }
  if (state.draft) svg.append(svgRect(state.draft, "drawn draft", ""));
}

function showDecisions(decisions) {
  const list = $("decisions");
  list.replaceChildren();
  for (const d of decisions) {
    const item = document.createElement("li");
    item.dataset.decision = d.decision;
    item.textContent = `${d.decided_at} ${d.operator}: ${d.decision}` +
      (d.boxes_xyxy.length ? ` (${d.boxes_xyxy.length} box)` : "") +
      (d.note ? `: ${d.note}` : "") + ` [model ${d.model_version || "none"}]`;
    list.append(item);
  }
}

// ---- zoom and pan --------------------------------------------------------------------------
function applyTransform() {
  $("stage").style.transform = `translate(${state.panX}px, ${state.panY}px) scale(${state.zoom})`;
  $("zoom-label").textContent = `${Math.round(state.zoom * 100)}%`;
  $("boxes").style.fontSize = `${12 / state.zoom}px`;  // labels keep their size on screen,
  $("boxes").style.setProperty("--z", state.zoom);     // and so do lines and dashes (style.css)
}

// Fit the whole scan in the viewport, centred: the operator first sees all of the parcel.
function resetView() {
  const vp = $("viewport"), bitmap = state.images["image.png"];
  if (!bitmap) { state.zoom = 1; state.panX = 0; state.panY = 0; applyTransform(); return; }
  state.zoom = Math.min(vp.clientWidth / bitmap.width, vp.clientHeight / bitmap.height);
  state.panX = (vp.clientWidth - bitmap.width * state.zoom) / 2;
  state.panY = (vp.clientHeight - bitmap.height * state.zoom) / 2;
  applyTransform();
}

function imagePoint(event) {
  const rect = $("stage").getBoundingClientRect();
  const w = Number($("boxes").getAttribute("width")) || 1;
  const s = rect.width / w;
  const x = (event.clientX - rect.left) / s, y = (event.clientY - rect.top) / s;
  const h = Number($("boxes").getAttribute("height")) || 1;
  return [Math.min(w, Math.max(0, x)), Math.min(h, Math.max(0, y))];
}

function setupViewport() {
  const vp = $("viewport");
  let drag = null;
  vp.addEventListener("wheel", (event) => {
    event.preventDefault();
    const factor = event.deltaY < 0 ? 1.25 : 0.8;
    const rect = vp.getBoundingClientRect();
    const mx = event.clientX - rect.left, my = event.clientY - rect.top;
    state.panX = mx - (mx - state.panX) * factor;  // keep the point under the cursor still
    state.panY = my - (my - state.panY) * factor;
    state.zoom *= factor;
    applyTransform();
  }, {passive: false});
  vp.addEventListener("mousedown", (event) => {
    if (state.drawing) {
      const [x, y] = imagePoint(event);
      drag = {draw: true, x, y};
    } else {
      drag = {draw: false, x: event.clientX - state.panX, y: event.clientY - state.panY};
    }
  });
  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    if (drag.draw) {
      const [x, y] = imagePoint(event);
      state.draft = [Math.min(x, drag.x), Math.min(y, drag.y), Math.max(x, drag.x), Math.max(y, drag.y)];
      drawBoxes();
    } else {
      state.panX = event.clientX - drag.x; state.panY = event.clientY - drag.y;
      applyTransform();
    }
  });
  window.addEventListener("mouseup", () => {
    if (drag && drag.draw && state.draft) {
      const [x1, y1, x2, y2] = state.draft;
      if (x2 - x1 >= 2 && y2 - y1 >= 2) {
        const [bx1, by1, bx2, by2] = state.draft.map(Math.round);
        // CT: the box covers the slice it is drawn on until extended (E) to others
        state.drawnBoxes.push(state.slices ? [bx1, by1, state.z, bx2, by2, state.z + 1]
                                           : [bx1, by1, bx2, by2]);
      }
      state.draft = null;
      $("save-missed").disabled = state.drawnBoxes.length === 0;
      $("extend-missed").disabled = state.drawnBoxes.length === 0;
      drawBoxes();
    }
    drag = null;
  });
}

// ---- decisions -----------------------------------------------------------------------------
// CT: the last drawn box grows in depth to hold the slice shown (page to the item's first and
// last slices and extend to each).
function extendDrawn() {
  const box = state.drawnBoxes[state.drawnBoxes.length - 1];
  if (!state.drawing || !state.slices || !box || box.length !== 6) return;
  box[2] = Math.min(box[2], state.z);
  box[5] = Math.max(box[5], state.z + 1);
  $("action-status").textContent = `box covers slices ${box[2] + 1}-${box[5]}`;
  drawBoxes();
}

function setDrawing(on) {
  state.drawing = on;
  state.draft = null;
  if (!on) state.drawnBoxes = [];
  $("viewport").classList.toggle("drawing", on);
  $("save-missed").hidden = !on;
  $("cancel-missed").hidden = !on;
  $("save-missed").disabled = true;
  $("extend-missed").hidden = !(on && state.slices);
  $("extend-missed").disabled = true;
  $("missed").hidden = on;
  drawBoxes();
}

async function decide(decision, boxes) {
  const id = state.shown;
  if (!id || id !== state.current) {
    if (state.current) $("action-status").textContent = "not saved: the scan is not loaded";
    return;
  }
  if (state.drawing && decision !== "missed") {  // a drawn box would be dropped unseen
    $("action-status").textContent = "not saved: save the missed box (Enter) or cancel it (Esc) first";
    return;
  }
  const body = {decision, boxes, note: $("note").value};
  try {
    await api(`/api/scans/${encodeURIComponent(id)}/decision`, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    $("action-status").textContent = `saved: ${decision} (${id})`;
    $("note").value = "";
    const detail = await (await api(`/api/scans/${encodeURIComponent(id)}`)).json();
    if (state.shown === id) {
      setDrawing(false);
      state.detail = detail;
      showInfo(detail);
      showDecisions(detail.decisions);
    }
    await refreshQueue();
    if ($("advance").checked && state.current === id) moveInQueue(1);
  } catch (error) {
    $("action-status").textContent = `not saved: ${error.message}`;
  }
}

function signInFailed(error) {
  if (error.message !== "401") logout(`Not signed in: ${error.message}`);  // 401: said already
}

function setupControls() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    login($("token").value.trim()).catch(signInFailed);
  });
  $("logout").addEventListener("click", () => logout(""));
  $("filter").addEventListener("change", () => { state.pages = 1; refreshQueueSaying(); });
  $("more").addEventListener("click", () => refreshQueueSaying(loadOlder));
  $("refresh").addEventListener("click", () => refreshQueueSaying());
  $("gray-toggle").addEventListener("change", drawBase);
  $("heat-toggle").addEventListener("change", showHeat);
  $("heat-opacity").addEventListener("input", showHeat);
  $("win-level").addEventListener("input", () => { drawBase(); showWindowHu(); });
  $("win-width").addEventListener("input", () => { drawBase(); showWindowHu(); });
  $("win-organic").addEventListener("click", () => setWindowHu(-400, 600));
  $("slice").addEventListener("input", () => showSlice(Number($("slice").value)));
  $("win-reset").addEventListener("click", () => {
    $("win-level").value = 128; $("win-width").value = 255; drawBase(); showWindowHu(); resetView();
  });
  $("confirm").addEventListener("click", () => decide("confirm", []));
  $("clear").addEventListener("click", () => decide("clear", []));
  $("missed").addEventListener("click", () => setDrawing(true));
  $("cancel-missed").addEventListener("click", () => setDrawing(false));
  $("save-missed").addEventListener("click", () => decide("missed", state.drawnBoxes));
  $("extend-missed").addEventListener("click", extendDrawn);
  document.addEventListener("keydown", onKey);
}

function toggle(id) { const box = $(id); box.checked = !box.checked; box.dispatchEvent(new Event("change")); }

function onKey(event) {
  if (event.target.tagName === "INPUT" && event.target.type !== "checkbox" &&
      event.target.type !== "range") return;  // typing a note or the token
  if (event.target.tagName === "SELECT" || event.target.tagName === "TEXTAREA") return;
  if (event.ctrlKey || event.altKey || event.metaKey) return;  // Ctrl+C copies, never confirms
  if (event.key === "Enter" && !(state.drawing && state.drawnBoxes.length)) return;  // a button
  // a held key repeats: one decision per press (decisions cannot be taken back)
  if (event.repeat && ["c", "x", "m", "e", "Enter"].includes(event.key)) return;
  const keys = {
    c: () => decide("confirm", []), x: () => decide("clear", []), m: () => setDrawing(true),
    g: () => toggle("gray-toggle"), h: () => toggle("heat-toggle"), r: refreshQueueSaying,
    j: () => moveInQueue(1), k: () => moveInQueue(-1), 0: () => $("win-reset").click(),
    ".": () => showSlice(state.z + 1), ",": () => showSlice(state.z - 1),
    PageDown: () => showSlice(state.z + 1), PageUp: () => showSlice(state.z - 1),
    Escape: () => setDrawing(false), e: extendDrawn,
    Enter: () => { if (state.drawing && state.drawnBoxes.length) decide("missed", state.drawnBoxes); },
  };
  const action = keys[event.key];
  if (action && !$("app").hidden) { event.preventDefault(); action(); }
}

// New scans (from the watch folder, other stations' uploads) show up without the operator
// asking: the queue is fetched again every QUEUE_POLL_MS while the page is in view (one fetch
// at a time). A test may set localStorage "concealscan.queuePollMs" to poll faster.
const QUEUE_POLL_MS = Number(localStorage.getItem("concealscan.queuePollMs")) || 10000;
let polling = false;
function pollQueue() {
  if (polling || !state.token || $("app").hidden || document.hidden) return;
  polling = true;
  const health = checkHealth().catch((error) => {  // a problem that began (or ended) meanwhile
    if (state.token) showProblems([`health not checked: ${error.message}`]);
  });
  Promise.all([refreshQueueSaying(), health]).finally(() => { polling = false; });
}

setupControls();
setupViewport();
setInterval(pollQueue, QUEUE_POLL_MS);
window.addEventListener("resize", () => { if (state.shown) resetView(); });
if (state.token) login(state.token).catch(signInFailed);
