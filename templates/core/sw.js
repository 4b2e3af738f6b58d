// Propusk's service worker: keeps the public app shell for offline use and nothing private.
const CACHE = "propusk-shell-{{ version }}";
const SHELL = {{ shell|safe }};
const OFFLINE = "{{ offline_url }}";

self.addEventListener("install", (event) => {
  // Fetched without cookies, so the cached pages are the anonymous ones.
  const requests = SHELL.map((url) => new Request(url, { credentials: "omit" }));
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(requests)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("propusk-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  // Writes and htmx swaps always go to the network; nothing of theirs is ever stored.
  if (request.method !== "GET" || request.headers.get("HX-Request")) return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(() => caches.match(OFFLINE)));
    return;
  }
  if (SHELL.includes(url.pathname)) {
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
  }
});
