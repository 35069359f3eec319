// Choosing runs in the runs list, to compare them or act on them together (run_actions.js). The table
// refreshes itself while runs are active, so the choice lives here (and in sessionStorage) and is put back
// after every refresh.
const KEY = "trainyard.compare";
const chosen = new Set(JSON.parse(sessionStorage.getItem(KEY) || "[]"));
const link = document.getElementById("compare-selected");
const bar = document.getElementById("bulk-bar");
const count = document.getElementById("bulk-count");

export function chosenRuns() {
  return [...chosen].map(Number);
}

export function clearChosen() {
  chosen.clear();
  render();
}

function render() {
  const boxes = [...document.querySelectorAll(".compare-box")];
  boxes.forEach((box) => { box.checked = chosen.has(box.value); });
  const pageBox = document.querySelector(".select-page");
  if (pageBox) pageBox.checked = boxes.length > 0 && boxes.every((box) => box.checked);
  link.hidden = chosen.size < 2;
  link.textContent = `Compare ${chosen.size} runs`;
  link.href = `/runs/compare/?runs=${[...chosen].join(",")}`;
  if (bar) bar.hidden = chosen.size === 0;
  if (count) count.textContent = `${chosen.size} selected`;
  sessionStorage.setItem(KEY, JSON.stringify([...chosen]));
}

document.addEventListener("change", (event) => {
  if (event.target.classList.contains("select-page")) {
    document.querySelectorAll(".compare-box").forEach((box) => {
      if (event.target.checked) chosen.add(box.value); else chosen.delete(box.value);
    });
  } else if (event.target.classList.contains("compare-box")) {
    if (event.target.checked) chosen.add(event.target.value); else chosen.delete(event.target.value);
  } else {
    return;
  }
  render();
});
document.body.addEventListener("htmx:afterSwap", render);
render();
