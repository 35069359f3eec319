// CSRF for scripts: every unsafe fetch() sends Django's token; htmx gets it from <body hx-headers>.
// htmx only swaps 2xx answers by default; show our 4xx form errors too (they carry the message).
export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function apiFetch(url, options = {}) {
  const method = (options.method || "GET").toUpperCase();
  const headers = new Headers(options.headers || {});
  if (!["GET", "HEAD", "OPTIONS", "TRACE"].includes(method)) headers.set("X-CSRFToken", csrfToken());
  headers.set("Accept", "application/json");
  return fetch(url, { credentials: "same-origin", ...options, headers });
}

window.trainyard = Object.assign(window.trainyard || {}, { apiFetch, csrfToken });

document.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.xhr.status === 400) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
