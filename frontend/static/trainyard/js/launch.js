// The launch form: shows each option only where it applies (augmentation for images, momentum for sgd…),
// suggests the preset that suits the chosen dataset until the user picks a model, and says it is working.
const form = document.getElementById("launch-form");

function fieldValue(name) {
  const input = form.elements[name];
  if (!input) return "";
  if (input.type === "checkbox") return input.checked ? "on" : "off";
  return input.value;
}

function chosenDataset() {
  const select = document.getElementById("launch-dataset");
  return select.options[select.selectedIndex]?.dataset || {};
}

function refresh() {
  for (const label of form.querySelectorAll("[data-when]")) {
    const [name, allowed] = label.dataset.when.split("=");
    label.hidden = !allowed.split(",").includes(fieldValue(name));
  }
  const images = chosenDataset().modality === "image";
  for (const group of form.querySelectorAll("[data-images-only]")) group.hidden = !images;
}

function suggestModel() {
  const model = document.getElementById("launch-model");
  if (model.dataset.touched || !model.value.startsWith("preset:")) return;
  const wanted = chosenDataset().modality === "image" ? "preset:small_cnn" : "preset:mlp";
  if ([...model.options].some((option) => option.value === wanted)) model.value = wanted;
  model.dispatchEvent(new Event("explain-refresh"));  // explain.js: the chosen model's explanation
}

if (form) {
  const model = document.getElementById("launch-model");
  model.addEventListener("change", () => { model.dataset.touched = "yes"; });
  document.getElementById("launch-dataset").addEventListener("change", () => { suggestModel(); refresh(); });
  const gpus = form.elements.gpus_per_node;
  const queue = form.elements.queue;
  queue?.addEventListener("change", () => { queue.dataset.touched = "yes"; });
  gpus?.addEventListener("change", () => {
    const wanted = Number(gpus.value) > 0 ? "gpu" : "cpu";
    if (!queue.dataset.touched && [...queue.options].some((option) => option.value === wanted)) queue.value = wanted;
  });
  form.addEventListener("change", refresh);
  form.addEventListener("submit", () => {
    // A pressed Launch stays pressed: the first launch of a preset imports torch on the server (seconds).
    document.getElementById("launch-submit").disabled = true;
    document.getElementById("launch-wait").hidden = false;
  });
  // Back from the run page (the browser's page cache), the form must be usable again.
  window.addEventListener("pageshow", () => {
    document.getElementById("launch-submit").disabled = false;
    document.getElementById("launch-wait").hidden = true;
  });
  refresh();
}
