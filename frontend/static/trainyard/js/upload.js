// The dataset upload widget: drag and drop, a progress bar with speed and ETA, and resumable
// chunked uploads for files over 100 MB (a dropped connection resumes where the server stands).
import { apiFetch, csrfToken } from "./csrf.js";

const CHUNKED_ABOVE = 100 * 1024 * 1024;
const form = document.getElementById("upload-form");

function human(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function duration(seconds) {
  if (!isFinite(seconds)) return "…";
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
}

class ProgressView {
  constructor() {
    this.block = document.getElementById("upload-progress");
    this.bar = document.getElementById("upload-bar");
    this.text = document.getElementById("upload-status");
  }
  start(total) { this.total = total; this.started = performance.now(); this.block.hidden = false; this.show(0); }
  show(sent) {
    const elapsed = (performance.now() - this.started) / 1000;
    const speed = elapsed > 0 ? sent / elapsed : 0;
    const eta = speed > 0 ? (this.total - sent) / speed : Infinity;
    this.bar.style.width = `${(100 * sent / this.total).toFixed(1)}%`;
    this.text.textContent = `${human(sent)} of ${human(this.total)} · ${human(speed)}/s · ${sent >= this.total ? "processing…" : "about " + duration(eta) + " left"}`;
  }
  message(text) { this.text.textContent = text; }
}

function showErrors(body) {
  const box = document.getElementById("upload-errors");
  box.innerHTML = "";
  const messages = typeof body === "string" ? [body] : Object.entries(body).flatMap(([field, value]) =>
    (Array.isArray(value) ? value : [value]).map((message) => field === "detail" || field === "non_field_errors" ? message : `${field}: ${message}`));
  for (const message of messages) {
    const line = document.createElement("div");
    line.className = "alert error";
    line.textContent = message;
    box.appendChild(line);
  }
}

function xhrPost(url, body, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded);
    request.onload = () => resolve({ status: request.status, body: JSON.parse(request.responseText || "{}") });
    request.onerror = () => reject(new Error("The connection dropped: check your network and upload again."));
    request.send(body);
  });
}

async function chunkedUpload(file, project, chunkBytes, progress) {
  let response = await apiFetch("/api/uploads/", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ project, filename: file.name, size: file.size }),
  });
  let upload = await response.json();
  if (!response.ok) throw upload;
  let failures = 0;
  while (upload.received < file.size) {
    const chunk = file.slice(upload.received, Math.min(file.size, upload.received + chunkBytes));
    try {
      response = await apiFetch(`/api/uploads/${upload.id}/?offset=${upload.received}`, {
        method: "PUT", headers: { "Content-Type": "application/octet-stream" }, body: chunk,
      });
      const body = await response.json();
      if (response.ok || response.status === 409) { upload.received = body.received; failures = 0; }
      else throw body;
    } catch (error) {
      if (error instanceof TypeError && failures < 20) {  // network: ask where the server stands, go on
        failures += 1;
        progress.message(`Connection lost; resuming (attempt ${failures})…`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(30000, 1000 * 2 ** failures)));
        const state = await apiFetch(`/api/uploads/${upload.id}/`).then((r) => r.json()).catch(() => upload);
        upload.received = state.received ?? upload.received;
        continue;
      }
      throw error;
    }
    progress.show(upload.received);
  }
  return upload.id;
}

if (form) {
  const input = document.getElementById("upload-file");
  const zone = document.getElementById("dropzone");
  const chosen = document.getElementById("chosen-file");
  const nameInput = document.getElementById("upload-name");
  let file = null;
  const choose = (picked) => {
    file = picked;
    chosen.textContent = picked ? `${picked.name} · ${human(picked.size)}` : "";
    if (picked && !nameInput.value) nameInput.value = picked.name.replace(/\.(tar\.gz|[^.]+)$/, "").replace(/[^\w-]+/g, "-").toLowerCase();
  };
  input.addEventListener("change", () => choose(input.files[0]));
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => { event.preventDefault(); choose(event.dataTransfer.files[0]); });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showErrors({});
    document.getElementById("upload-errors").innerHTML = "";
    if (!file) return showErrors({ file: "Choose or drop a file first." });
    const limit = Number(form.dataset.maxBytes);
    if (file.size > limit) return showErrors({ file: `The file is ${human(file.size)}, over the ${human(limit)} limit.` });
    if (file.size === 0) return showErrors({ file: "The file is empty." });
    const button = document.getElementById("upload-submit");
    button.disabled = true;
    const progress = new ProgressView();
    progress.start(file.size);
    try {
      const fields = new FormData(form);
      fields.delete("file");
      fields.set("project", form.dataset.project);
      for (const [key, value] of [...fields.entries()]) if (value === "") fields.delete(key);
      if (file.size > CHUNKED_ABOVE) fields.set("upload", await chunkedUpload(file, form.dataset.project, Number(form.dataset.chunkBytes), progress));
      else fields.set("file", file);
      const answer = await xhrPost("/api/datasets/", fields, (sent) => progress.show(Math.min(sent, file.size)));
      if (answer.status !== 201) throw answer.body;
      progress.show(file.size);
      progress.message(`Uploaded. ${answer.body.name} v${answer.body.version} is being processed.`);
      form.reset(); choose(null);
      document.body.dispatchEvent(new Event("refresh-datasets"));
    } catch (error) {
      progress.message("");
      showErrors(error instanceof Error ? error.message : error);
    } finally {
      button.disabled = false;
    }
  });
}
