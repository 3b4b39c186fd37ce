// Annotation workspace: keyboard shortcuts, candidate picker, and autosave/submit coordination.
// The form works without this script; it adds keys and keeps drafts and submits from racing.
(function () {
  "use strict";

  const form = document.getElementById("annotation-form");
  if (!form) return;

  const keys = JSON.parse(form.dataset.shortcuts || "{}");
  const rows = Array.from(form.querySelectorAll("[data-numeric]"));
  const flagBox = form.querySelector("[data-flags]");
  const flagInputs = flagBox ? Array.from(flagBox.querySelectorAll("input[type=checkbox]")) : [];
  const help = document.getElementById("shortcut-help");
  const response = document.getElementById("response");
  const primary = form.querySelector("[data-primary-submit]");
  const skipButton = form.querySelector("[data-skip]");
  const NOT_TYPING = new Set(["radio", "checkbox", "button", "submit", "reset", "hidden", "range", "color", "file"]);

  let active = 0;
  let flagMode = false;
  let draftsInFlight = 0;
  let submitting = false;
  let pendingSubmitter = null;
  // After a 409 the stored annotation is newer than this tab: stop autosaving over it.
  let stale = false;

  function isTyping(element) {
    if (!element || element === document.body) return false;
    if (element.isContentEditable) return true;
    const tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    return tag === "INPUT" && !NOT_TYPING.has(element.type);
  }

  function keyName(event) {
    return event.key === " " ? "Space" : event.key;
  }

  function matches(event, spec) {
    if (!spec) return false;
    const key = keyName(event);
    return spec.length === 1 ? key.toLowerCase() === spec.toLowerCase() : key === spec;
  }

  function setActive(index) {
    if (!rows.length) return;
    active = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) { row.classList.toggle("active", i === active); });
    rows[active].scrollIntoView({ block: "nearest" });
  }

  function setFlagMode(on) {
    flagMode = on && flagInputs.length > 0;
    if (flagBox) flagBox.classList.toggle("flag-mode", flagMode);
  }

  function submit(submitter) {
    if (submitting || !submitter) return;
    form.requestSubmit(submitter);
  }

  function chooseDigit(digit) {
    if (flagMode) {
      const input = flagInputs[digit - 1];
      if (input) input.click();
      return;
    }
    const row = rows[active];
    const radio = row && row.querySelector('input[type=radio][value="' + digit + '"]');
    if (!radio) return;
    radio.click();
    if (active < rows.length - 1) setActive(active + 1);
  }

  function clickChoice(letter) {
    const radio = form.querySelector('[data-choice="' + letter + '"]');
    if (radio) radio.click();
  }

  function toggleHelp() {
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }

  function onKeyDown(event) {
    if (event.defaultPrevented || event.isComposing) return;
    const target = event.target;
    const modifier = event.ctrlKey || event.metaKey;

    if (modifier && event.key === "Enter") {
      event.preventDefault();
      submit(primary);
      return;
    }
    if (help && help.open) {
      if (matches(event, keys.help)) { event.preventDefault(); help.close(); }
      return;
    }
    if (isTyping(target)) {
      if (event.key === "Escape") { event.preventDefault(); target.blur(); }
      return;
    }
    if (modifier || event.altKey) return;
    // Enter on a focused button or link keeps its usual meaning.
    if (event.key === "Enter" && target && target.closest && target.closest("button, a, summary")) return;

    let handled = true;
    if (/^[0-9]$/.test(event.key)) chooseDigit(Number(event.key));
    else if (event.key === "Escape" && flagMode) setFlagMode(false);
    else if (matches(event, keys.submit)) submit(primary);
    else if (matches(event, keys.skip)) submit(skipButton);
    else if (matches(event, keys.flag)) setFlagMode(!flagMode);
    else if (matches(event, keys.help)) toggleHelp();
    else if (matches(event, keys.edit) && response) response.focus();
    else if (matches(event, keys.next_question)) setActive(active + 1);
    else if (matches(event, keys.previous_question)) setActive(active - 1);
    else if (matches(event, keys.choose_a)) clickChoice("A");
    else if (matches(event, keys.choose_b)) clickChoice("B");
    else handled = false;
    if (handled) event.preventDefault();
  }

  function useCandidate(button) {
    const id = button.dataset.useCandidate;
    const template = id ? document.getElementById("candidate-text-" + id) : null;
    response.value = template ? template.content.textContent : "";
    document.getElementById("base-candidate").value = id || "";
    response.dispatchEvent(new Event("input", { bubbles: true }));
    response.focus();
  }

  document.addEventListener("keydown", onKeyDown);

  rows.forEach(function (row, index) {
    row.addEventListener("click", function () { setActive(index); });
  });
  setActive(0);

  form.querySelectorAll("[data-use-candidate]").forEach(function (button) {
    button.addEventListener("click", function () { useCandidate(button); });
  });
  document.querySelectorAll("[data-help]").forEach(function (button) {
    button.addEventListener("click", toggleHelp);
  });

  // A submit waits for a draft save in flight, because that save changes the version the submit
  // must carry. A second submit while the first is under way is dropped.
  form.addEventListener("submit", function (event) {
    if (submitting) { event.preventDefault(); return; }
    if (draftsInFlight > 0) {
      event.preventDefault();
      pendingSubmitter = event.submitter || primary;
      return;
    }
    submitting = true;
  });
  window.addEventListener("pageshow", function () { submitting = false; });

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt !== form) return;
    if (submitting || stale) { event.preventDefault(); return; }
    draftsInFlight += 1;
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt !== form) return;
    draftsInFlight = Math.max(0, draftsInFlight - 1);
    if (pendingSubmitter && draftsInFlight === 0 && !stale) {
      const submitter = pendingSubmitter;
      pendingSubmitter = null;
      form.requestSubmit(submitter);
    }
  });
  // htmx 2 does not swap 4xx bodies by default; show conflicts and validation messages.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    const status = event.detail.xhr.status;
    if (status === 409 || status === 422 || status === 403 || status === 404) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      if (status === 409) { stale = true; pendingSubmitter = null; }
    }
  });
  document.body.addEventListener("htmx:sendError", function (event) {
    if (event.detail.elt !== form) return;
    const status = document.getElementById("draft-status");
    if (status) status.textContent = form.dataset.msgOffline || "";
  });
})();
