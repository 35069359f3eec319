// Explanations where choices are made: a tooltip for every ⓘ (what the concept is, when to use it), and for
// a <select data-option-concepts='{"adam": "adam", …}'> a line under it explaining the chosen option (or an ⓘ
// beside it: data-option-explain="icon"); selects drawn later inside an element with data-option-concepts-for
// (a CSS selector) and data-option-concepts are explained the same way as they appear. The
// texts come from the page's #concept-explanations JSON ({slug: {name, what, when, url}}) or the ⓘ's title.
// A script that changes such a select's value itself dispatches "explain-refresh" on it.
let explanations = null;

/** {name, what, when, url} of a concept, or null. */
export function explanation(slug) {
  if (explanations === null) {
    const script = typeof document !== "undefined" && document.getElementById("concept-explanations");
    explanations = script ? JSON.parse(script.textContent) : {};
  }
  return (slug && explanations[slug]) || null;
}

/** An ⓘ linking to the concept's page (null when the concept is unknown). */
export function explainIcon(slug) {
  const entry = explanation(slug);
  if (!entry) return null;
  const link = document.createElement("a");
  link.className = "explain";
  link.href = entry.url;
  link.dataset.concept = slug;
  link.setAttribute("aria-label", `About ${entry.name}`);
  link.textContent = "i";  // drawn as a circled i by explain.css (fonts lack ⓘ on some systems)
  return link;
}

/** Point an existing ⓘ holder at another concept (empty when none). */
export function showConcept(holder, slug) {
  const icon = explainIcon(slug);
  holder.replaceChildren(...(icon ? [icon] : []));
  holder.dataset.concept = icon ? slug : "";
}

function tipOf(slug) {
  const entry = explanation(slug);
  return entry ? `${entry.name}: ${entry.what}` : "";
}

/** Explain a select's chosen option: a line under it ("line"), or an ⓘ beside it ("icon"), kept up to date.
 * Options without a title get their concept's explanation as one (the browser shows it on hover). */
function bindSelect(select, mapping, mode = "line") {
  if (select.dataset.explainBound) return;
  select.dataset.explainBound = "yes";
  for (const option of select.options) if (!option.title && tipOf(mapping[option.value])) option.title = tipOf(mapping[option.value]);
  const holder = document.createElement("span");
  holder.className = mode === "icon" ? "option-explain-icon" : "help option-explain";
  holder.dataset.for = select.name || select.className;
  if (select.name) holder.dataset.testid = `option-explain-${select.name}`;
  select.insertAdjacentElement("afterend", holder);
  const update = () => {
    const slug = mapping[select.value];
    if (mode === "icon") { showConcept(holder, slug); return; }
    const entry = explanation(slug);
    holder.replaceChildren(...(entry ? [explainIcon(slug), `${entry.name}: ${entry.what}`] : []));
  };
  select.addEventListener("change", update);
  // A script that sets the value itself (no change event) dispatches this one.
  select.addEventListener("explain-refresh", update);
  update();
}

/** A container whose selects are drawn by another script (the designer's layer rows): bind each as it appears. */
function bindContainer(container) {
  const mapping = JSON.parse(container.dataset.optionConcepts || "{}");
  const selector = container.dataset.optionConceptsFor;
  const bindAll = () => container.querySelectorAll(selector).forEach((select) => bindSelect(select, mapping, "icon"));
  new MutationObserver(bindAll).observe(container, { childList: true, subtree: true });
  bindAll();
}

// --- the tooltip ---------------------------------------------------------------------------------------------

let tooltip = null;

function tooltipFor(link) {
  const entry = explanation(link.dataset.concept);
  const box = document.createElement("div");
  if (entry) {
    const name = document.createElement("strong");
    name.textContent = entry.name;
    const what = document.createElement("div");
    what.textContent = entry.what;
    box.append(name, what);
    if (entry.when) {
      const when = document.createElement("div");
      when.className = "explain-when";
      when.textContent = `When to use it: ${entry.when}`;
      box.append(when);
    }
  } else {
    box.textContent = link.dataset.tip || "";
  }
  const more = document.createElement("div");
  more.className = "explain-more";
  more.textContent = "Click for typical values, pitfalls and the runs that applied it.";
  box.append(more);
  return box;
}

function show(link) {
  if (!tooltip) {
    tooltip = document.createElement("div");
    tooltip.className = "explain-tooltip";
    tooltip.id = "explain-tooltip";
    tooltip.setAttribute("role", "tooltip");
    tooltip.dataset.testid = "explain-tooltip";
    document.body.append(tooltip);
  }
  tooltip.replaceChildren(...tooltipFor(link).childNodes);
  tooltip.hidden = false;
  tooltip.style.left = "0px";
  tooltip.style.top = "0px";
  link.setAttribute("aria-describedby", tooltip.id);
  const anchor = link.getBoundingClientRect();
  const box = tooltip.getBoundingClientRect();
  const left = Math.max(8, Math.min(anchor.left, window.innerWidth - box.width - 8));
  const below = anchor.bottom + 6;
  tooltip.style.left = `${left}px`;
  tooltip.style.top = `${below + box.height > window.innerHeight ? anchor.top - box.height - 6 : below}px`;
}

function hide() { if (tooltip) tooltip.hidden = true; }

function adopt(link) {
  // The tooltip replaces the browser's own title bubble (which would show the same text a second later).
  if (link.title) { link.dataset.tip = link.title; link.removeAttribute("title"); }
}

if (typeof document !== "undefined") {
  const start = () => {
    document.querySelectorAll("a.explain[title]").forEach(adopt);
    document.querySelectorAll("select[data-option-concepts]").forEach((select) => bindSelect(
      select, JSON.parse(select.dataset.optionConcepts || "{}"), select.dataset.optionExplain || "line"));
    document.querySelectorAll("[data-option-concepts-for]").forEach(bindContainer);
  };
  const target = (event) => event.target instanceof Element && event.target.closest("a.explain");
  document.addEventListener("mouseover", (event) => { const link = target(event); if (link) { adopt(link); show(link); } });
  document.addEventListener("mouseout", (event) => { if (target(event)) hide(); });
  document.addEventListener("focusin", (event) => { const link = target(event); if (link) { adopt(link); show(link); } });
  document.addEventListener("focusout", (event) => { if (target(event)) hide(); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
