// The caption page: one image to the model's REST :predict API, then its
// caption, score, the beam's best captions and each word's attention map.
// Plain browser JavaScript, no dependencies; everything it knows about the
// model (name, grid size, outputs) comes from the server's answers.
"use strict";

const SIDE = 448; // the main canvas, a multiple of 7 and of 14
const THUMBNAIL = 96;

const page = {
  config: { model_name: null, max_image_bytes: null },
  picture: null, // the image as the browser decoded it, or null
  hypotheses: [], // [{caption, words, score, attention: [[L floats] per step]}]
  hypothesis: 0,
  word: 0,
  request: 0, // the latest request's number: older answers are ignored
};

const $ = (id) => document.getElementById(id);

function setStatus(text) {
  $("status").textContent = text;
}

// Shows why the latest image got no caption; the previous image's result is
// hidden, so that it is never taken for this one's.
function showError(text) {
  const error = $("error");
  error.textContent = text;
  error.hidden = false;
  $("result").hidden = true;
  setStatus("");
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function megabytes(bytes) {
  return (bytes / (1024 * 1024)).toFixed(1) + " MB";
}

async function loadConfig() {
  try {
    const response = await fetch("/config.json", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    page.config = await response.json();
    $("model-line").textContent = "Model: " + page.config.model_name;
  } catch (error) {
    $("model-line").textContent = "Model: unknown";
    showError("Cannot reach the captioning server (" + error.message + "). Is it running?");
  }
}

function toBase64(bytes) {
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

// A readable sentence for a refused request: the server's own reason kept.
function describeFailure(status, payload) {
  const reason = payload && typeof payload.error === "string" ? payload.error : "";
  if (status === 400 && /Bad image|image_bytes/.test(reason)) {
    return "The model cannot read this file as an image: " + reason;
  }
  if (status === 400) return "The server refused the request: " + (reason || "bad request");
  if (status === 404) return "The server does not know this model: " + reason;
  if (status === 429) return "The server is busy; try again in a moment. " + reason;
  if (status === 502) return reason || "The model server is not answering.";
  if (status === 504) return "The server took too long to caption this image. " + reason;
  return "The server failed (HTTP " + status + "): " + (reason || "no reason given");
}

// The prediction's captions, best first: the n best when the export has them.
function hypothesesOf(prediction) {
  const make = (caption, score, attention) => ({
    caption: caption,
    words: caption.split(" ").filter((word) => word.length > 0),
    score: score,
    attention: attention,
  });
  if (Array.isArray(prediction.nbest_captions)) {
    return prediction.nbest_captions.map((caption, i) =>
      make(caption, prediction.nbest_scores[i], prediction.nbest_attention_weights[i]));
  }
  return [make(prediction.captions, prediction.scores, prediction.attention_weights)];
}

async function decodePicture(file) {
  try {
    return await createImageBitmap(file);
  } catch (error) {
    return null; // the model read it, the browser cannot show it
  }
}

async function captionFile(file) {
  clearError();
  if (!file) return;
  const number = ++page.request;
  const limit = page.config.max_image_bytes;
  if (file.size === 0) return showError(file.name + " is empty.");
  if (limit && file.size > limit) {
    return showError(file.name + " is " + megabytes(file.size) + "; this model accepts " +
                     "images of at most " + megabytes(limit) + ".");
  }
  if (!page.config.model_name) await loadConfig();
  if (!page.config.model_name) return;
  setStatus("Captioning " + file.name + "\u2026");
  let response;
  let payload = null;
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    response = await fetch("/v1/models/" + encodeURIComponent(page.config.model_name) +
                           ":predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ instances: [{ b64: toBase64(bytes) }] }),
    });
    payload = await response.json().catch(() => null);
  } catch (error) {
    if (number === page.request) {
      showError("Cannot reach the captioning server: it may be down (" + error.message + ").");
    }
    return;
  }
  if (number !== page.request) return;
  if (!response.ok) return showError(describeFailure(response.status, payload));
  if (!payload || !Array.isArray(payload.predictions) || !payload.predictions.length) {
    return showError("The server answered without a caption.");
  }
  const picture = await decodePicture(file);
  if (number !== page.request) return;
  page.picture = picture;
  page.hypotheses = hypothesesOf(payload.predictions[0]);
  page.fileName = file.name;
  selectHypothesis(0);
  $("result").hidden = false;
  setStatus("Captioned " + file.name + ".");
}

// The attention grid's side: L must be a square number (7x7, 14x14, ...).
function gridSide(alpha) {
  const side = Math.round(Math.sqrt(alpha.length));
  return side * side === alpha.length ? side : null;
}

// The attention map as a side x side image: white, alpha proportional to
// attention / its maximum.
function attentionImage(alpha, side) {
  const cells = document.createElement("canvas");
  cells.width = side;
  cells.height = side;
  const context = cells.getContext("2d");
  const data = context.createImageData(side, side);
  const largest = Math.max(...alpha) || 1;
  alpha.forEach((value, i) => {
    data.data[4 * i] = data.data[4 * i + 1] = data.data[4 * i + 2] = 255;
    data.data[4 * i + 3] = Math.round(255 * Math.max(0, value) / largest);
  });
  context.putImageData(data, 0, 0);
  return cells;
}

function drawPicture(context, size) {
  if (page.picture) {
    context.drawImage(page.picture, 0, 0, size, size); // stretched, as the model sees it
  } else {
    context.fillStyle = "#666";
    context.fillRect(0, 0, size, size);
  }
}

function drawAttention(context, alpha, size) {
  const side = gridSide(alpha);
  context.clearRect(0, 0, size, size);
  if (!side) return;
  context.imageSmoothingEnabled = true; // bilinear: cell centres keep their values
  context.drawImage(attentionImage(alpha, side), 0, 0, size, size);
}

function current() {
  return page.hypotheses[page.hypothesis];
}

function selectHypothesis(index) {
  page.hypothesis = index;
  const hypothesis = current();
  $("caption").textContent = hypothesis.caption || "(an empty caption)";
  $("score").textContent = "Score (log-probability): " + hypothesis.score.toFixed(3);
  const photo = $("photo").getContext("2d");
  drawPicture(photo, SIDE);
  const locations = hypothesis.attention.length ? hypothesis.attention[0].length : 0;
  const side = locations ? gridSide(hypothesis.attention[0]) : null;
  const note = $("grid-note");
  note.hidden = !!side && !!page.picture;
  note.textContent = !page.picture
    ? "The model read this image, but this browser cannot display it."
    : "The attention spans " + locations + " locations, not a square grid: no map to draw.";
  $("overlay").dataset.grid = side || "";
  renderWords();
  renderThumbnails();
  renderNBest();
  selectWord(0, false);
}

function renderWords() {
  const strip = $("words");
  strip.replaceChildren();
  current().words.forEach((word, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = word;
    button.dataset.index = i;
    button.setAttribute("aria-pressed", "false");
    button.tabIndex = -1;
    button.addEventListener("click", () => selectWord(i, true));
    strip.appendChild(button);
  });
}

function renderThumbnails() {
  const list = $("thumbnails");
  list.replaceChildren();
  const hypothesis = current();
  hypothesis.words.forEach((word, i) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-label", "Attention for the word \u201c" + word + "\u201d");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = THUMBNAIL;
    canvas.setAttribute("aria-hidden", "true");
    const context = canvas.getContext("2d");
    drawPicture(context, THUMBNAIL);
    context.fillStyle = "rgba(0, 0, 0, 0.5)";
    context.fillRect(0, 0, THUMBNAIL, THUMBNAIL);
    drawAttentionOver(context, hypothesis.attention[i], THUMBNAIL);
    const label = document.createElement("span");
    label.textContent = word;
    button.append(canvas, label);
    button.addEventListener("click", () => selectWord(i, true));
    item.appendChild(button);
    list.appendChild(item);
  });
}

function drawAttentionOver(context, alpha, size) {
  const side = gridSide(alpha);
  if (!side) return;
  context.imageSmoothingEnabled = true;
  context.globalAlpha = 0.85;
  context.drawImage(attentionImage(alpha, side), 0, 0, size, size);
  context.globalAlpha = 1;
}

function renderNBest() {
  const section = $("nbest-section");
  const list = $("nbest");
  list.replaceChildren();
  section.hidden = page.hypotheses.length < 2;
  page.hypotheses.forEach((hypothesis, i) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-pressed", String(i === page.hypothesis));
    button.textContent = (hypothesis.caption || "(empty)") + " \u2014 " +
                         hypothesis.score.toFixed(3);
    button.addEventListener("click", () => selectHypothesis(i));
    item.appendChild(button);
    list.appendChild(item);
  });
}

function selectWord(index, focus) {
  const hypothesis = current();
  const words = hypothesis.words;
  const photo = $("photo");
  const overlay = $("overlay");
  if (!words.length) {
    overlay.getContext("2d").clearRect(0, 0, SIDE, SIDE);
    photo.classList.remove("attending");
    photo.setAttribute("aria-label", "The image, captioned with no words");
    $("view-caption").textContent = "";
    return;
  }
  page.word = Math.max(0, Math.min(index, words.length - 1));
  const word = words[page.word];
  drawAttention(overlay.getContext("2d"), hypothesis.attention[page.word], SIDE);
  overlay.dataset.word = page.word;
  photo.classList.toggle("attending", !!gridSide(hypothesis.attention[page.word]));
  photo.setAttribute("aria-label", "The image " + page.fileName + ", brightest where the " +
                     "model looked for the word \u201c" + word + "\u201d");
  $("view-caption").textContent = "Word " + (page.word + 1) + " of " + words.length +
                                  ": \u201c" + word + "\u201d";
  for (const strip of [$("words"), $("thumbnails")]) {
    strip.querySelectorAll("button").forEach((button, i) => {
      button.setAttribute("aria-pressed", String(i === page.word));
    });
  }
  const buttons = $("words").querySelectorAll("button");
  buttons.forEach((button, i) => { button.tabIndex = i === page.word ? 0 : -1; });
  if (focus) buttons[page.word].focus();
}

function onKey(event) {
  if ($("result").hidden || !page.hypotheses.length) return;
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
  const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
  const last = current().words.length - 1;
  let index = null;
  if (event.key in moves) index = page.word + moves[event.key];
  if (event.key === "Home") index = 0;
  if (event.key === "End") index = last;
  if (index === null || last < 0) return;
  event.preventDefault();
  selectWord(index, true);
}

function firstImageFile(items) {
  for (const item of items || []) {
    const file = item.kind === "file" ? item.getAsFile() : item;
    if (file && file instanceof File) return file;
  }
  return null;
}

function setUp() {
  const input = $("file-input");
  const zone = $("drop-zone");
  input.addEventListener("change", () => {
    captionFile(input.files[0]);
    input.value = ""; // choosing the same file again captions it again
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = firstImageFile(event.dataTransfer.files);
    if (file) captionFile(file);
    else showError("Drop an image file here (what was dropped holds no file).");
  });
  document.addEventListener("paste", (event) => {
    const file = firstImageFile(event.clipboardData && event.clipboardData.items);
    if (file) captionFile(file);
    else showError("The clipboard holds no image to caption.");
  });
  document.addEventListener("keydown", onKey);
  loadConfig();
}

setUp();
