// Propusk's own script: service worker, install button, small behaviours htmx leaves to us.
// Lives in a file (never inline) so the Content-Security-Policy needs no 'unsafe-inline'.
(function () {
  "use strict";

  const script = document.currentScript;
  if ("serviceWorker" in navigator && script && script.dataset.sw) {
    navigator.serviceWorker.register(script.dataset.sw, { scope: "/" }).catch(function () {});
  }

  // Chrome offers installation through beforeinstallprompt; show our button only then.
  let deferred = null;
  window.addEventListener("beforeinstallprompt", function (event) {
    event.preventDefault();
    deferred = event;
    const button = document.getElementById("install-button");
    if (button) button.hidden = false;
  });
  document.addEventListener("click", function (event) {
    const button = event.target.closest("#install-button");
    if (!button || !deferred) return;
    deferred.prompt();
    deferred.userChoice.finally(function () {
      deferred = null;
      button.hidden = true;
    });
  });
  window.addEventListener("appinstalled", function () {
    const button = document.getElementById("install-button");
    if (button) button.hidden = true;
  });

  // Live countdowns: <span data-countdown="SECONDS"> ticks as MM:SS; elements with
  // data-countdown-done are revealed (and the counter's parent hidden) when it reaches zero.
  function startCountdowns(root) {
    root.querySelectorAll("[data-countdown]:not([data-ticking])").forEach(function (el) {
      el.dataset.ticking = "1";
      let left = parseInt(el.dataset.countdown, 10) || 0;
      const scope = el.closest("[data-countdown-scope]") || document;
      function show() {
        const m = String(Math.floor(left / 60)).padStart(2, "0");
        const s = String(left % 60).padStart(2, "0");
        el.textContent = m + ":" + s;
      }
      show();
      const timer = setInterval(function () {
        left -= 1;
        if (left <= 0) {
          clearInterval(timer);
          scope.querySelectorAll("[data-countdown-done]").forEach(function (x) { x.hidden = false; });
          const wrap = el.closest("[data-countdown-wrap]");
          if (wrap) wrap.hidden = true;
          return;
        }
        show();
      }, 1000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { startCountdowns(document); });
  document.addEventListener("htmx:load", function (event) { startCountdowns(event.detail.elt); });

  // The offline page is kept without cookies, so it carries every language: show the one of
  // the last page this person saw (remembered below), and let «Обновить» retry the page that
  // failed (the service worker answered its address with this page) rather than go home.
  document.addEventListener("DOMContentLoaded", function () {
    const versions = document.querySelectorAll("[data-offline-lang]");
    if (!versions.length) {
      try { localStorage.setItem("propusk-lang", document.documentElement.lang); } catch (e) { /* private mode */ }
      return;
    }
    let lang = null;
    try { lang = localStorage.getItem("propusk-lang"); } catch (e) { /* private mode */ }
    const chosen = Array.prototype.find.call(versions, function (v) { return v.dataset.offlineLang === lang; });
    if (chosen) {
      versions.forEach(function (v) { v.hidden = v !== chosen; });
      document.documentElement.lang = lang;
      document.title = chosen.dataset.title;
      // The header's name too: it is the cached page's, in the language it was fetched in.
      const brand = document.querySelector(".brand");
      if (brand && brand.lastChild) brand.lastChild.textContent = " " + chosen.dataset.brand;
    }
    // Its footer (install, languages) needs the network, and speaks the cached language.
    const footer = document.querySelector(".footer");
    if (footer) footer.hidden = true;
  });
  document.addEventListener("click", function (event) {
    const link = event.target.closest("[data-reload]");
    if (!link) return;
    event.preventDefault();
    window.location.reload();
  });

  // An htmx request that failed: htmx swaps nothing in, so the page's banner says what
  // happened, in the words of the server's error fragment (read as text, never as HTML).
  // `polled`: the failure was a poll's (the feed, the gates, a payment's status), which the
  // next poll that gets through takes back; one of the person's own actions stays said.
  let bannerFromPoll = false;
  function banner(text, polled) {
    const el = document.getElementById("request-error");
    if (!el) return;
    el.textContent = text || "";
    el.hidden = !text;
    bannerFromPoll = Boolean(text && polled);
  }
  function byPoll(event) {
    const config = event.detail.requestConfig;
    const cause = config && config.triggeringEvent;
    return !(cause && (cause.type === "submit" || cause.type === "click"
                       || cause.type === "keyup" || cause.type === "input"));
  }
  // A request that replaces an answer (data-answer: the check's verdict) dims the old one
  // at once, and a failed one takes it away: a guard must never read the last plate's
  // «Въезд разрешён» under the plate just typed.
  function answerBox(event) {
    const box = event.detail.target;
    return box && box.hasAttribute && box.hasAttribute("data-answer") ? box : null;
  }
  // Only a new action of the person's (a submit, a tap) clears the banner: the pollers (feed,
  // gates, payment status) ask every second, and the suggestions while typing, and they wiped
  // an error before anyone could read it.
  document.addEventListener("htmx:beforeRequest", function (event) {
    const config = event.detail.requestConfig;
    const cause = config && config.triggeringEvent;
    if (cause && (cause.type === "submit" || cause.type === "click")) banner("");
    const box = answerBox(event);
    if (box) box.setAttribute("aria-busy", "true");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    // A poll failed, and now one got through: the connection is back, the banner goes.
    if (event.detail.successful && bannerFromPoll) banner("");
    const box = answerBox(event);
    if (!box) return;
    box.removeAttribute("aria-busy");
    if (!event.detail.successful) box.replaceChildren();
  });

  // A swap must not take the keyboard's place away. A poll that replaces a part of the page
  // (the gates table every second, a join request's status): the element that had the focus
  // is found again in what came in, by its id, its link or its form. A part swapped in out
  // of band (the check form, when its mistake comes or goes on a tap of a suggestion): what
  // was pressed in it is gone, so its field gets the focus. Either way only when the focus
  // has fallen back to the page itself.
  let giveFocusBack = null;
  function selectorFor(el) {
    if (el.id) return "#" + CSS.escape(el.id);
    const tag = el.tagName.toLowerCase();
    const href = el.getAttribute("href");
    if (href) return tag + '[href="' + CSS.escape(href) + '"]';
    const action = el.form && el.form.getAttribute("action");
    if (action) return 'form[action="' + CSS.escape(action) + '"] ' + tag;
    return null;
  }
  function holdsFocus(part) {
    const active = document.activeElement;
    return part && active && active !== document.body && part.contains(active);
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    const config = event.detail.requestConfig;
    const polled = !(config && config.triggeringEvent);
    const wanted = polled && holdsFocus(event.detail.target) ? selectorFor(document.activeElement) : null;
    // Only ever set here: another answer swapped in the 20 ms before an out-of-band swap
    // settles (the suggestions, asked for 300 ms after typing) wiped its giving back, and the
    // field lost the keyboard (the likely cause of one e2e failure on a loaded machine).
    if (wanted) giveFocusBack = function () { return document.querySelector(wanted); };
  });
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    const id = event.detail.target && event.detail.target.id;
    if (!id || !holdsFocus(event.detail.target)) return;
    giveFocusBack = function () {
      const part = document.getElementById(id);
      return part && (part.querySelector("[aria-invalid='true']")
        || part.querySelector("input:not([type=hidden]), select, textarea"));
    };
  });
  document.addEventListener("htmx:afterSettle", function () {
    const find = giveFocusBack;
    giveFocusBack = null;
    if (!find || (document.activeElement && document.activeElement !== document.body)) return;
    const again = find();
    if (again) again.focus({ preventScroll: true });
  });

  // A menu made of <details data-menu> (the territory switcher) closes as menus do: on
  // Escape, giving the focus back to its summary, and on a tap anywhere else.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      menu.open = false;
      const summary = menu.querySelector("summary");
      if (summary && menu.contains(document.activeElement)) summary.focus();
    });
  });
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.open = false;
    });
  });

  // A form answered with mistakes: take the person to the first one (on a phone it may be
  // far below the fold), and put the cursor there.
  function showFirstMistake(root) {
    let field = root.querySelector("[aria-invalid='true']");
    // A group of choices marked as a whole (WTForms puts it on the list): its first choice.
    if (field && !field.matches("input, select, textarea, button")) {
      field = field.querySelector("input, select, textarea") || field;
    }
    const mistake = field || root.querySelector(".form-error");
    if (!mistake) return;
    if (!field || !field.matches("input, select, textarea, button")) mistake.setAttribute("tabindex", "-1");
    mistake.focus({ preventScroll: true });
    mistake.scrollIntoView({ block: "center" });
  }
  document.addEventListener("DOMContentLoaded", function () { showFirstMistake(document); });
  document.addEventListener("htmx:afterSettle", function (event) {
    const config = event.detail.requestConfig;
    const cause = config && config.triggeringEvent;
    if (cause && cause.type === "submit") showFirstMistake(document);
  });
  document.addEventListener("htmx:responseError", function (event) {
    const el = document.getElementById("request-error");
    const answer = new DOMParser().parseFromString(event.detail.xhr.responseText || "", "text/html");
    const said = answer.querySelector("[data-request-error]");
    banner(said ? said.textContent : el && el.dataset.failed, byPoll(event));
    // A poll answered «not found»: the person is no longer in the territory, or no longer
    // in the role that shows this part. It asks no more (it went on asking every second
    // in every tab left open), and keeps what it showed under the banner. A copy of the
    // element, never processed by htmx, takes its place (htmx stops a poll only for a 286).
    const polling = event.detail.elt;
    if (event.detail.xhr.status === 404 && byPoll(event) && polling.hasAttribute("hx-trigger")) {
      const still = polling.cloneNode(true);
      still.removeAttribute("hx-trigger");
      polling.replaceWith(still);
    }
  });
  document.addEventListener("htmx:sendError", function (event) {
    const el = document.getElementById("request-error");
    banner(el && el.dataset.offline, byPoll(event));
  });

  // A form with data-confirm asks before it is sent; «Отмена» stops it. This listener runs
  // first (capture, on the document): stopping the event there keeps it from htmx too,
  // which sends boosted and hx-post forms from its own listener on the form whatever
  // preventDefault said. (hx-confirm would not do: on a button it is never asked for a
  // form's submit, the form being what triggers the request.)
  // A chosen option may carry the question instead (a role that ends something for good).
  document.addEventListener("submit", function (event) {
    const form = event.target;
    const chosen = form.querySelector && form.querySelector("option[data-confirm]:checked");
    const question = (form.dataset && form.dataset.confirm) || (chosen && chosen.dataset.confirm);
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  // A form the browser itself sends (not htmx: «Войти», «Выйти», the language) goes once:
  // a double click on «Войти» signed in twice, and the spare device pushed one of the
  // person's own out past the limit of ten. htmx has already cancelled the submits it sends
  // itself by the time this listener, on the document, hears them. A page brought back by
  // «Назад» may send it again.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (event.defaultPrevented || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
    if (form.dataset.sent) {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      delete form.dataset.sent;
    });
  });
})();
