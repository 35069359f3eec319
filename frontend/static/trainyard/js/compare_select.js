// Choosing runs to compare in the runs list. The table refreshes itself while runs are active, so the
// choice lives here (and in sessionStorage) and is put back after every refresh.
const KEY = "trainyard.compare";
const chosen = new Set(JSON.parse(sessionStorage.getItem(KEY) || "[]"));
const link = document.getElementById("compare-selected");

function render() {
  document.querySelectorAll(".compare-box").forEach((box) => { box.checked = chosen.has(box.value); });
  link.hidden = chosen.size < 2;
  link.textContent = `Compare ${chosen.size} runs`;
  link.href = `/runs/compare/?runs=${[...chosen].join(",")}`;
  sessionStorage.setItem(KEY, JSON.stringify([...chosen]));
}

document.addEventListener("change", (event) => {
  if (!event.target.classList.contains("compare-box")) return;
  if (event.target.checked) chosen.add(event.target.value); else chosen.delete(event.target.value);
  render();
});
document.body.addEventListener("htmx:afterSwap", render);
render();
