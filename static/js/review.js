// Review page keys: j / k move between cards, a accepts, r rejects, c focuses the comment.
(function () {
  "use strict";

  let active = 0;

  function cards() {
    return Array.from(document.querySelectorAll("[data-review-card]"));
  }

  function setActive(index) {
    const all = cards();
    if (!all.length) return;
    active = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (card, i) { card.classList.toggle("active", i === active); });
    all[active].scrollIntoView({ block: "nearest" });
  }

  function nextOpen(from) {
    const all = cards();
    for (let i = from; i < all.length; i += 1) {
      if (!all[i].hasAttribute("data-decided")) return i;
    }
    return Math.min(from, all.length - 1);
  }

  // A click, not form.requestSubmit(button): htmx takes the decision from the clicked button.
  function press(selector) {
    const card = cards()[active];
    const button = card && card.querySelector(selector);
    if (button && !button.disabled) button.click();
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "SELECT")) {
      if (event.key === "Escape") { event.preventDefault(); target.blur(); }
      return;
    }
    let handled = true;
    if (event.key === "j") setActive(active + 1);
    else if (event.key === "k") setActive(active - 1);
    else if (event.key === "a") press("[data-accept]");
    else if (event.key === "r") press("[data-reject]");
    else if (event.key === "c") {
      const card = cards()[active];
      const comment = card && card.querySelector("textarea");
      if (comment) comment.focus();
    } else handled = false;
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    const card = event.target.closest && event.target.closest("[data-review-card]");
    if (card) setActive(cards().indexOf(card));
  });

  document.body.addEventListener("htmx:afterSwap", function () {
    setActive(nextOpen(active));
  });
  // htmx 2 does not swap 4xx bodies by default; show conflicts in the message area.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    const status = event.detail.xhr.status;
    if (status === 409 || status === 422 || status === 403 || status === 404) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  setActive(0);
})();
