// Class balance as a Plotly bar chart: one bar group per class, one trace per split.
function draw() {
  const element = document.getElementById("class-balance");
  if (!element || !window.Plotly) return;
  const balance = JSON.parse(element.dataset.balance);
  const traces = Object.entries(balance.splits).map(([split, counts]) => ({
    type: "bar", name: split, x: balance.classes, y: counts,
  }));
  window.Plotly.newPlot(element, traces, {
    barmode: "group", margin: { t: 10, r: 10, b: 40, l: 50 }, height: 280,
    legend: { orientation: "h" }, yaxis: { title: "samples" },
  }, { displaylogo: false, responsive: true });
}
if (document.readyState === "complete") draw(); else window.addEventListener("load", draw);
