// emolens page: a photo through POST v1/analyze, the camera through WS v1/stream.
// Plain JavaScript, no dependencies; every URL is relative to this page (works under a path prefix).
"use strict";

const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
const COLORS = { angry: "#d62728", disgust: "#8c564b", fear: "#9467bd", happy: "#2ca02c",
                 sad: "#1f77b4", surprise: "#ff7f0e", neutral: "#7f7f7f" };
const $ = (id) => document.getElementById(id);

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function pct(v) { return (100 * v).toFixed(0) + "%"; }

// Whom a live face belongs to: its person (stable across shots) once described, else its track.
function liveTag(f) { return f.person != null ? `person ${f.person}` : `track ${f.track_id}`; }

// One face's card: title (number or person, top emotion) and a bar per emotion.
function faceCard(title, face, attrs) {
  const card = document.createElement("div");
  card.className = "face";
  card.dataset.emotion = face.emotion;
  for (const [k, v] of Object.entries(attrs || {})) card.dataset[k] = v;
  const h = document.createElement("h3");
  h.append(title + ": ");
  const label = document.createElement("span");
  label.className = "emotion";
  label.textContent = face.emotion;
  label.style.color = COLORS[face.emotion];
  h.append(label, " " + pct(face.scores[face.emotion]));
  card.append(h);
  if (face.frontal === false) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = face.pose ? `Turned away (yaw ${Math.round(face.pose.yaw)}°): less reliable.`
                                 : "Landmarks did not fit (profile or small face): less reliable.";
    card.append(note);
  }
  for (const e of EMOTIONS) {
    const row = document.createElement("div");
    row.className = "bar-row";
    const name = document.createElement("span");
    name.textContent = e;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = (100 * face.scores[e]).toFixed(1) + "%";
    fill.style.background = COLORS[e];
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = face.scores[e].toFixed(2);
    row.append(name, bar, value);
    card.append(row);
  }
  return card;
}

// ---------------------------------------------------------------------------------------------
// annotations: each face's score panel goes where it covers no face and no other panel

function overlaps(a, b, margin = 0) {
  return a[0] < b[0] + b[2] + margin && b[0] < a[0] + a[2] + margin &&
         a[1] < b[1] + b[3] + margin && b[1] < a[1] + a[3] + margin;
}

// Rectangles [x, y, w, h] of size pw x ph touching box's sides (right, left, below, above), each
// slid along its side from the aligned position outwards, inside a W x H canvas.
function besideBox(box, pw, ph, W, H, gap, step) {
  const [x, y, w, h] = box;
  const out = [];
  const slide = (lo, hi, start) => {      // positions from lo to hi, nearest to start first
    const ps = [];
    for (let p = lo; p <= hi; p += step) ps.push(p);
    ps.push(hi);
    return ps.sort((a, b) => Math.abs(a - start) - Math.abs(b - start));
  };
  const ys = slide(Math.max(0, y - ph + step), Math.min(H - ph, y + h - step), y);
  const xs = slide(Math.max(0, x - pw + step), Math.min(W - pw, x + w - step), x);
  for (const py of ys) out.push([x + w + gap, py]);         // right
  for (const py of ys) out.push([x - gap - pw, py]);        // left
  for (const px of xs) out.push([px, y + h + gap]);         // below
  for (const px of xs) out.push([px, y - gap - ph]);        // above
  return out.filter(([px, py]) => px >= 0 && py >= 0 && px + pw <= W && py + ph <= H)
            .map(([px, py]) => [px, py, pw, ph]);
}

// Where each face's annotation goes. boxes: the faces (canvas pixels, landmarks included);
// sizes: [{panel: [w, h], compact: [w, h], tag: [w, h]}] per face. Returns [{kind, rect}] per
// face: "panel" (all seven scores), "compact" (one line: who, top emotion, score), "tag" (who
// alone, in the colour of the top emotion; the cards below the picture have the rest) or, when
// even that finds no free room, "inside" (the tag inside the face's own box, at its top).
function placeAnnotations(boxes, sizes, W, H, unit) {
  const gap = 2 * unit;
  const step = Math.max(2, 4 * unit);
  const taken = boxes.slice();
  const free = (r) => taken.every((t) => !overlaps(r, t, unit));
  const result = new Array(boxes.length);
  // Faces with the least free room around them choose first (in a row of faces, the middle ones).
  const room = boxes.map((box, i) => besideBox(box, ...sizes[i].panel, W, H, gap, step).filter(free).length);
  const order = boxes.map((_, i) => i).sort((a, b) => room[a] - room[b] || a - b);
  for (const kind of ["panel", "compact", "tag"]) {
    for (const i of order) {
      if (result[i]) continue;
      const [pw, ph] = sizes[i][kind];
      const spot = besideBox(boxes[i], pw, ph, W, H, gap, step).find(free);
      if (spot) {
        result[i] = { kind, rect: spot };
        taken.push(spot);
      }
    }
  }
  boxes.forEach((box, i) => {
    if (!result[i]) {
      const [pw, ph] = sizes[i].tag;
      const rect = [Math.min(Math.max(box[0], 0), Math.max(W - pw, 0)),
                    Math.min(Math.max(box[1], 0), Math.max(H - ph, 0)), pw, ph];
      result[i] = { kind: "inside", rect };
    }
  });
  return result;
}

// The box a face takes on the canvas: its detector box and its landmarks.
function faceExtent(f, sx, sy) {
  let [x0, y0] = [f.box[0], f.box[1]];
  let [x1, y1] = [f.box[0] + f.box[2], f.box[1] + f.box[3]];
  for (const [px, py] of f.landmarks || []) {
    x0 = Math.min(x0, px); y0 = Math.min(y0, py); x1 = Math.max(x1, px); y1 = Math.max(y1, py);
  }
  return [x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy];
}

// Boxes, landmarks and score panels on a 2-D context; sx, sy map the analysed picture's pixels to
// the canvas; unit: canvas pixels per CSS pixel (text keeps its size on screen). The layout
// (canvas pixels) is kept in the canvas's data-layout for whoever wants to check it.
function drawFaces(ctx, faces, sx, sy, unit, tag) {
  const W = ctx.canvas.width;
  const H = ctx.canvas.height;
  const fontPx = 11 * unit;
  const row = 13 * unit;
  const pad = 4 * unit;
  const bar = 48 * unit;
  ctx.font = `${fontPx}px system-ui, sans-serif`;
  const nameW = ctx.measureText("surprise").width;
  const pctW = ctx.measureText("100%").width;
  const tags = faces.map((f, i) => tag(f, i));
  const titles = faces.map((f, i) => `${tags[i]} · ${f.emotion} ${pct(f.scores[f.emotion])}`);
  ctx.font = `bold ${fontPx}px system-ui, sans-serif`;
  const sizes = titles.map((t, i) => {
    const tw = ctx.measureText(t).width;
    return { panel: [Math.ceil(2 * pad + Math.max(tw, nameW + pctW + bar + 2 * pad)), Math.ceil(2 * pad + 8 * row)],
             compact: [Math.ceil(2 * pad + tw), Math.ceil(row + pad)],
             tag: [Math.ceil(2 * pad + ctx.measureText(tags[i]).width), Math.ceil(row + pad)] };
  });
  const boxes = faces.map((f) => faceExtent(f, sx, sy));
  const layout = placeAnnotations(boxes, sizes, W, H, unit);
  ctx.lineWidth = Math.max(1.5, 1.5 * unit);
  faces.forEach((f, i) => {
    const [x, y, w, h] = f.box;
    ctx.strokeStyle = COLORS[f.emotion] || "#0b6bcb";
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    if (f.landmarks) {
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      const dot = Math.max(1.5, 1.5 * unit);
      for (const [px, py] of f.landmarks) ctx.fillRect(px * sx - dot / 2, py * sy - dot / 2, dot, dot);
    }
  });
  faces.forEach((f, i) => {
    const { kind, rect } = layout[i];
    const [px, py, pw, ph] = rect;
    const color = COLORS[f.emotion] || "#0b6bcb";
    ctx.textBaseline = "middle";
    if (kind === "panel") {
      ctx.fillStyle = "rgba(25,25,25,0.8)";
      ctx.fillRect(px, py, pw, ph);
      ctx.strokeStyle = color;
      ctx.lineWidth = unit;
      ctx.strokeRect(px + unit / 2, py + unit / 2, pw - unit, ph - unit);
      ctx.font = `bold ${fontPx}px system-ui, sans-serif`;
      ctx.fillStyle = "#fff";
      ctx.fillText(titles[i], px + pad, py + pad + row / 2);
      ctx.font = `${fontPx}px system-ui, sans-serif`;
      EMOTIONS.forEach((e, k) => {
        const cy = py + pad + (k + 1.5) * row;
        const v = f.scores[e] || 0;
        ctx.fillStyle = e === f.emotion ? "#fff" : "#ccc";
        ctx.fillText(e, px + pad, cy);
        const bx = px + pad + nameW + pad;
        ctx.fillStyle = "#555";
        ctx.fillRect(bx, cy - row * 0.3, bar, row * 0.6);
        ctx.fillStyle = COLORS[e];
        ctx.fillRect(bx, cy - row * 0.3, bar * v, row * 0.6);
        ctx.fillStyle = "#eee";
        ctx.fillText(pct(v), bx + bar + pad, cy);
      });
    } else {
      ctx.fillStyle = color;
      ctx.fillRect(px, py, pw, ph);
      ctx.font = `bold ${fontPx}px system-ui, sans-serif`;
      ctx.fillStyle = "#fff";
      ctx.fillText(kind === "compact" ? titles[i] : tags[i], px + pad, py + ph / 2);
    }
  });
  ctx.canvas.dataset.layout = JSON.stringify(layout.map((l, i) => ({ kind: l.kind, rect: l.rect, face: boxes[i] })));
  return layout;
}

// Canvas pixels per CSS pixel of a canvas as shown (1 before it is laid out).
function canvasScale(canvas) {
  const shown = canvas.getBoundingClientRect().width;
  return shown > 0 ? canvas.width / shown : 1;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    return JSON.stringify(body.detail);
  } catch (_) {
    return response.statusText;
  }
}

// ---------------------------------------------------------------------------------------------
// photo

async function analyzePhoto(file) {
  const status = $("photo-status");
  const facesEl = $("photo-faces");
  const canvas = $("photo-canvas");
  facesEl.replaceChildren();
  setStatus(status, `Analysing ${file.name}…`);
  const form = new FormData();
  form.append("file", file, file.name || "photo");
  let result;
  try {
    const response = await fetch("v1/analyze", { method: "POST", body: form });
    if (!response.ok) {
      setStatus(status, `${response.status}: ${await errorText(response)}`, true);
      return;
    }
    result = await response.json();
  } catch (err) {
    setStatus(status, `The server could not be reached (${err}).`, true);
    return;
  }
  let bitmap = null;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch (_) {
    bitmap = null;  // a format the browser does not show (TIFF, ...): the scores still are
  }
  const ctx = canvas.getContext("2d");
  if (bitmap) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    ctx.drawImage(bitmap, 0, 0);
    drawFaces(ctx, result.faces, 1, 1, canvasScale(canvas), (f, i) => `#${i + 1}`);
  } else {
    canvas.width = canvas.height = 0;
  }
  const n = result.faces.length;
  setStatus(status, n ? `${result.file}: ${n} face${n > 1 ? "s" : ""}` : `${result.file}: no face found`);
  result.faces.forEach((f, i) => facesEl.append(faceCard(`Face ${i + 1}`, f, { index: i + 1 })));
}

function setupPhoto() {
  const input = $("file");
  const drop = $("drop");
  input.addEventListener("change", () => { if (input.files.length) analyzePhoto(input.files[0]); });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    const file = ev.dataTransfer.files[0];
    if (file) analyzePhoto(file);
  });
}

// ---------------------------------------------------------------------------------------------
// camera: every new camera frame is sent as a JPEG when no frame is being analysed, else it is
// dropped (counted); one frame in flight at a time, and no camera frame is ever sent twice.

const RATE_WINDOW = 2000;   // ms over which frames/s are counted

const live = { stream: null, ws: null, busy: false, grab: document.createElement("canvas"),
               events: [], totals: null, presented: null, sentAt: 0, shot: 0, cuts: 0, cutTimer: null,
               frameLoop: null, timer: null };

const CLOSE_REASONS = { 1008: "refused (API key or origin)", 1009: "frame too large for the server",
                        1013: "server busy, try again later", 4408: "no frame sent for too long" };

function streamUrl() {
  const url = new URL("v1/stream", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

function count(kind, n = 1) {
  if (n <= 0) return;
  live.totals[kind] += n;
  live.events.push([performance.now(), kind, n]);
}

// Frames/s over the last RATE_WINDOW: camera frames, frames analysed, frames dropped; totals kept
// on the element (data-camera, data-sent, data-analysed, data-dropped) for whoever checks.
function showRates() {
  const now = performance.now();
  while (live.events.length && now - live.events[0][0] > RATE_WINDOW) live.events.shift();
  const el = $("rates");
  for (const [k, v] of Object.entries(live.totals)) el.dataset[k] = v;
  const span = Math.min(RATE_WINDOW, now - live.since) / 1000;
  if (span < 0.5) return;
  const per = { camera: 0, analysed: 0, dropped: 0 };
  for (const [, kind, n] of live.events) if (kind in per) per[kind] += n;
  const r = (k) => (per[k] / span).toFixed(1);
  $("fps").textContent = `${r("analysed")} frames/s analysed`;
  $("camera-fps").textContent = `of ${r("camera")} from the camera;`;
  $("dropped").textContent = per.dropped ? `${r("dropped")}/s dropped (server busy)` : "none dropped";
}

function sendFrame() {
  const video = $("video");
  const g = live.grab;
  const scale = Math.min(1, 640 / video.videoWidth);
  g.width = Math.round(video.videoWidth * scale);
  g.height = Math.round(video.videoHeight * scale);
  g.getContext("2d").drawImage(video, 0, 0, g.width, g.height);
  live.busy = true;
  live.sentAt = performance.now();
  const ws = live.ws;
  g.toBlob((blob) => {
    if (blob && ws === live.ws && ws.readyState === WebSocket.OPEN) {
      ws.send(blob);
      count("sent");
    } else {
      live.busy = false;
    }
  }, "image/jpeg", 0.8);
}

// Called once per new camera frame (n: frames the camera delivered since the last call).
function cameraFrames(n) {
  const video = $("video");
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  count("camera", n);
  if (live.busy) {
    count("dropped", n);
  } else {
    count("dropped", n - 1);   // frames the page did not see in time: not analysed either
    sendFrame();
  }
  showRates();
}

// New camera frames: requestVideoFrameCallback where the browser has it (its presentedFrames
// counts frames even when callbacks are coalesced), else a check of the frame counter per repaint.
function watchFrames(video) {
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = (_now, meta) => {
      if (live.frameLoop !== onFrame) return;
      const presented = meta.presentedFrames;
      cameraFrames(live.presented === null ? 1 : Math.max(1, presented - live.presented));
      live.presented = presented;
      video.requestVideoFrameCallback(onFrame);
    };
    live.frameLoop = onFrame;
    video.requestVideoFrameCallback(onFrame);
  } else {
    const counter = () => (video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames
                                                         : video.currentTime);
    const onPaint = () => {
      if (live.frameLoop !== onPaint) return;
      const c = counter();
      if (c !== live.presented) {
        const n = typeof c === "number" && live.presented !== null && Number.isInteger(c) ? c - live.presented : 1;
        live.presented = c;
        cameraFrames(Math.max(1, n));
      }
      requestAnimationFrame(onPaint);
    };
    live.frameLoop = onPaint;
    requestAnimationFrame(onPaint);
  }
}

// A cut (a new scene: every track ended) is marked for a moment; shots are numbered as in the
// stream's JSON and emolens video's CSV (0 from the start).
function showCut(shot) {
  const el = $("shot");
  live.cuts += 1;
  el.dataset.cuts = live.cuts;
  el.textContent = `cut: shot ${shot}`;
  el.classList.add("cut");
  clearTimeout(live.cutTimer);
  live.cutTimer = setTimeout(() => { el.classList.remove("cut"); el.textContent = `shot ${live.shot}`; }, 1200);
}

function showLive(result) {
  const video = $("video");
  const overlay = $("overlay");
  const ratio = window.devicePixelRatio || 1;
  overlay.width = Math.round(video.clientWidth * ratio);
  overlay.height = Math.round(video.clientHeight * ratio);
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (result.error) {
    setStatus($("camera-status"), result.error, true);
    return;
  }
  count("analysed");
  count("dropped", result.dropped || 0);    // frames the server dropped (none while one is in flight)
  showRates();
  const el = $("shot");
  el.dataset.shot = result.shot;
  if (result.cut) showCut(result.shot);
  else if (!el.classList.contains("cut")) el.textContent = `shot ${result.shot}`;
  live.shot = result.shot;
  drawFaces(ctx, result.faces, overlay.width / result.width, overlay.height / result.height, ratio, liveTag);
  const cards = result.faces.map((f) => faceCard(liveTag(f).replace(/^./, (c) => c.toUpperCase()), f,
    { track: f.track_id, person: f.person ?? "", shot: f.shot }));
  $("live-faces").replaceChildren(...cards);
  setStatus($("camera-status"), result.faces.length ? "" : "No face in view.");
}

async function startCamera() {
  const button = $("camera-btn");
  const status = $("camera-status");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus(status, "This browser gives pages no camera here (it needs https or localhost).", true);
    return;
  }
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    setStatus(status, `No camera: ${err.name === "NotAllowedError" ? "permission denied" : err.message}`, true);
    return;
  }
  const video = $("video");
  video.srcObject = live.stream;
  video.dataset.on = "1";
  await video.play();
  button.textContent = "Stop camera";
  button.classList.add("stop");
  setStatus(status, "Connecting…");
  const ws = new WebSocket(streamUrl());
  live.ws = ws;
  live.busy = false;
  live.events = [];
  live.totals = { camera: 0, sent: 0, analysed: 0, dropped: 0 };
  live.presented = null;
  live.cuts = 0;
  live.shot = 0;
  $("shot").dataset.cuts = 0;
  ws.onopen = () => {
    setStatus(status, "");
    live.since = performance.now();
    $("shot").textContent = "shot 0";
    watchFrames(video);
  };
  ws.onmessage = (ev) => {
    if (live.ws !== ws) return;
    live.busy = false;
    showLive(JSON.parse(ev.data));
  };
  ws.onclose = (ev) => {
    if (live.ws === ws) {
      const why = CLOSE_REASONS[ev.code] || ev.reason;
      setStatus(status, `Stream closed${why ? ": " + why : ""}.`,
                ev.code !== 1000 && ev.code !== 1005);
      stopCamera(false);
    }
  };
  // keep going if a reply is ever lost
  live.timer = setInterval(() => { if (live.busy && performance.now() - live.sentAt > 3000) live.busy = false; },
                           1000);
}

function stopCamera(closeSocket = true) {
  const ws = live.ws;
  live.ws = null;
  live.frameLoop = null;
  if (ws && closeSocket) ws.close(1000);
  if (live.stream) live.stream.getTracks().forEach((t) => t.stop());
  live.stream = null;
  clearInterval(live.timer);
  clearTimeout(live.cutTimer);
  const video = $("video");
  video.srcObject = null;
  delete video.dataset.on;
  const overlay = $("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  $("camera-btn").textContent = "Start camera";
  $("camera-btn").classList.remove("stop");
  for (const id of ["fps", "camera-fps", "dropped", "shot"]) $(id).textContent = "";
  $("shot").classList.remove("cut");
}

function setupCamera() {
  $("camera-btn").addEventListener("click", () => (live.ws || live.stream ? stopCamera() : startCamera()));
}

setupPhoto();
setupCamera();
