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

// One face's card: title (number or track, top emotion) and a bar per emotion.
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

// Boxes, landmarks and labels on a 2-D context; sx, sy map the analysed picture's pixels to the canvas.
function drawFaces(ctx, faces, sx, sy, tag) {
  const unit = Math.max(1.5, Math.min(ctx.canvas.width, ctx.canvas.height) / 250);
  ctx.lineWidth = unit;
  ctx.font = `${Math.round(7 * unit)}px system-ui, sans-serif`;
  faces.forEach((f, i) => {
    const [x, y, w, h] = f.box;
    const color = COLORS[f.emotion] || "#0b6bcb";
    ctx.strokeStyle = color;
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    if (f.landmarks) {
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      for (const [px, py] of f.landmarks) ctx.fillRect(px * sx - unit / 2, py * sy - unit / 2, unit, unit);
    }
    const text = `${tag(f, i)} ${f.emotion} ${pct(f.scores[f.emotion])}`;
    const tw = ctx.measureText(text).width + 4 * unit;
    const th = 9 * unit;
    const ty = y * sy > th ? y * sy - th : y * sy;
    ctx.fillStyle = color;
    ctx.fillRect(x * sx, ty, tw, th);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x * sx + 2 * unit, ty + 7 * unit);
  });
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
    drawFaces(ctx, result.faces, 1, 1, (f, i) => `#${i + 1}`);
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
// camera: frames as JPEG over the WebSocket, one in flight; the server drops stale ones anyway

const live = { stream: null, ws: null, busy: false, times: [], grab: document.createElement("canvas"),
               last: null };

const CLOSE_REASONS = { 1008: "refused (API key or origin)", 1009: "frame too large for the server",
                        1013: "server busy, try again later", 4408: "no frame sent for too long" };

function streamUrl() {
  const url = new URL("v1/stream", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

function sendFrame() {
  const video = $("video");
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN || live.busy || !video.videoWidth) return;
  const scale = Math.min(1, 640 / video.videoWidth);
  const g = live.grab;
  g.width = Math.round(video.videoWidth * scale);
  g.height = Math.round(video.videoHeight * scale);
  g.getContext("2d").drawImage(video, 0, 0, g.width, g.height);
  live.busy = true;
  g.toBlob((blob) => {
    if (blob && live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(blob);
    else live.busy = false;
  }, "image/jpeg", 0.8);
}

function showLive(result) {
  const now = performance.now();
  live.times.push(now);
  while (live.times.length && now - live.times[0] > 2000) live.times.shift();
  if (live.times.length > 1) {
    const fps = (live.times.length - 1) / ((now - live.times[0]) / 1000);
    $("fps").textContent = `${fps.toFixed(1)} frames/s`;
  }
  const video = $("video");
  const overlay = $("overlay");
  overlay.width = video.clientWidth;
  overlay.height = video.clientHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (result.error) {
    setStatus($("camera-status"), result.error, true);
    return;
  }
  drawFaces(ctx, result.faces, overlay.width / result.width, overlay.height / result.height,
            (f) => `#${f.track_id}`);
  const list = $("live-faces");
  list.replaceChildren(...result.faces.map((f) => faceCard(`Face #${f.track_id}`, f, { track: f.track_id })));
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
  live.times = [];
  ws.onopen = () => { setStatus(status, ""); sendFrame(); };
  ws.onmessage = (ev) => {
    live.busy = false;
    showLive(JSON.parse(ev.data));
    requestAnimationFrame(sendFrame);
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
  live.timer = setInterval(() => { if (live.busy && performance.now() - (live.times.at(-1) || 0) > 3000) {
    live.busy = false; sendFrame(); } }, 1000);
}

function stopCamera(closeSocket = true) {
  const ws = live.ws;
  live.ws = null;
  if (ws && closeSocket) ws.close(1000);
  if (live.stream) live.stream.getTracks().forEach((t) => t.stop());
  live.stream = null;
  clearInterval(live.timer);
  const video = $("video");
  video.srcObject = null;
  delete video.dataset.on;
  const overlay = $("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  $("camera-btn").textContent = "Start camera";
  $("camera-btn").classList.remove("stop");
  $("fps").textContent = "";
}

function setupCamera() {
  $("camera-btn").addEventListener("click", () => (live.ws || live.stream ? stopCamera() : startCamera()));
}

setupPhoto();
setupCamera();
