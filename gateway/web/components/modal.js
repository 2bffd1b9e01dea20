// The one modal of a page: every error, notice, confirmation and small form goes through it.
// A native <dialog> opened with showModal() (the rest of the page is inert), with focus kept inside
// by Tab and Shift+Tab, Escape to close, and focus given back to where it was.

import { h, replaceChildren } from "../lib/dom.js";
import { ApiError } from "../services/http.js";
import { applyFieldErrors, readFields } from "./form.js";

/** @typedef {import("../types/api.js").ProblemDetails} ProblemDetails */
/** @typedef {import("./form.js").Field} Field */

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

/**
 * @typedef {object} Request what to show; `render` fills the dialog and resolves the request's promise
 * @property {string} [key] a request with the key of the one showing (or queued) is dropped
 * @property {(dialog: HTMLDialogElement, done: (result: any) => void) => HTMLElement|null} render
 *   returns the element to focus first
 * @property {any} dismissed the result when closed with Escape
 */

/** @type {{request: Request, resolve: (value: any) => void}[]} */
const queue = [];
/** @type {HTMLDialogElement|null} */
let dialog = null;
/** @type {Element|null} */
let returnFocus = null;
let showing = false;

/** Per page: how to word problems that need a page-specific sentence (e.g. a 403 on the admin page). */
/** @type {{forbidden: string, signIn: string}} */
const wording = {
  forbidden: "You are not allowed to do this.",
  signIn: "Your session has ended or you are not signed in. Please sign in again from the application that sent you here.",
};

/** @param {Partial<typeof wording>} words */
export function setModalWording(words) {
  Object.assign(wording, words);
}

function ensureDialog() {
  if (dialog) return dialog;
  dialog = /** @type {HTMLDialogElement} */ (h("dialog", { id: "modal", class: "modal", "aria-labelledby": "modal-title" }));
  dialog.addEventListener("keydown", trapFocus);
  dialog.addEventListener("cancel", (event) => {
    // Escape: close as dismissed.
    event.preventDefault();
    finish(current?.request.dismissed);
  });
  document.body.append(dialog);
  return dialog;
}

/** @param {KeyboardEvent} event */
function trapFocus(event) {
  if (event.key !== "Tab" || !dialog) return;
  const items = /** @type {HTMLElement[]} */ ([...dialog.querySelectorAll(FOCUSABLE)]);
  if (items.length === 0) {
    event.preventDefault();
    return;
  }
  const first = items[0];
  const last = items[items.length - 1];
  const active = document.activeElement;
  if (event.shiftKey && (active === first || !dialog.contains(active))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (active === last || !dialog.contains(active))) {
    event.preventDefault();
    first.focus();
  }
}

/** @type {{request: Request, resolve: (value: any) => void}|null} */
let current = null;

/** @param {any} result */
function finish(result) {
  if (!current || !dialog) return;
  const { resolve } = current;
  current = null;
  dialog.close();
  showing = false;
  resolve(result);
  if (queue.length) {
    showNext();
  } else if (returnFocus instanceof HTMLElement && returnFocus.isConnected) {
    returnFocus.focus();
    returnFocus = null;
  }
}

function showNext() {
  const next = queue.shift();
  if (!next) return;
  const box = ensureDialog();
  current = next;
  showing = true;
  if (!box.open) {
    returnFocus = returnFocus ?? document.activeElement;
    replaceChildren(box);
    box.showModal();
  }
  replaceChildren(box);
  const focus = next.request.render(box, finish);
  (focus ?? /** @type {HTMLElement|null} */ (box.querySelector(FOCUSABLE)))?.focus();
}

/**
 * @param {Request} request
 * @returns {Promise<any>}
 */
function show(request) {
  if (request.key && [current, ...queue].some((item) => item?.request.key === request.key)) {
    return Promise.resolve(request.dismissed);
  }
  return new Promise((resolve) => {
    queue.push({ request, resolve });
    if (!showing) showNext();
  });
}

/** Whether the modal shows something now (for tests of the page, and to avoid stacking). */
export function isModalOpen() {
  return showing;
}

/**
 * @param {string} title
 * @param {(string|Node)[]} body
 * @param {string} tone "error" | "notice"
 * @param {HTMLElement[]} buttons
 */
function panel(title, body, tone, buttons) {
  return h("div", { class: `modal-panel ${tone}` },
    h("h2", { id: "modal-title" }, title),
    h("div", { class: "modal-body", id: "modal-body" }, ...body.map((part) => (typeof part === "string" ? h("p", {}, part) : part))),
    h("div", { class: "modal-actions" }, ...buttons));
}

/**
 * A notice with one button.
 * @param {string} title
 * @param {string|(string|Node)[]} message
 * @param {{key?: string}} [options]
 * @returns {Promise<void>}
 */
export function notify(title, message, options = {}) {
  return show({
    key: options.key,
    dismissed: undefined,
    render(box, done) {
      const ok = h("button", { type: "button", class: "primary", onclick: () => done(undefined) }, "OK");
      box.append(panel(title, Array.isArray(message) ? message : [message], "notice", [ok]));
      return ok;
    },
  });
}

/**
 * What a failed call means, in words for the reader: never a stack trace.
 * @param {unknown} error
 * @returns {{title: string, lines: (string|Node)[], key: string}}
 */
export function describeProblem(error) {
  if (!(error instanceof ApiError)) {
    return { title: "Something went wrong", lines: ["The page could not complete this. Please try again."], key: "unexpected" };
  }
  const problem = error.problem;
  /** @type {(string|Node)[]} */
  const lines = [];
  let title = problem.title || "The request failed";
  let key = `${problem.status}:${problem.reason}:${problem.detail}`;
  if (problem.status === 401) {
    title = "Please sign in again";
    lines.push(wording.signIn);
    key = "unauthenticated";
  } else if (problem.status === 403) {
    title = "Access denied";
    lines.push(wording.forbidden);
    if (problem.detail) lines.push(problem.detail);
    key = "forbidden";
  } else {
    if (problem.detail) lines.push(problem.detail);
    if (problem.status === 503) lines.push("A service is briefly unavailable. Please try again in a moment.");
    if (problem.status === 504) lines.push("A service took too long to answer. Please try again.");
  }
  if (problem.errors.length) {
    lines.push(h("ul", { class: "field-errors" },
      problem.errors.map((e) => h("li", {}, h("strong", {}, e.field), `: ${e.message}`))));
  }
  if (problem.request_id) {
    lines.push(h("p", { class: "request-id" }, "If you contact support, quote the reference ",
      h("code", { id: "modal-request-id" }, problem.request_id), "."));
  }
  return { title, lines, key };
}

/**
 * Show a failed call politely: the problem's title and detail, the bad fields, the request id.
 * @param {unknown} error
 * @returns {Promise<void>}
 */
export function showProblem(error) {
  if (!(error instanceof ApiError)) console.warn("unexpected failure", error);
  const { title, lines, key } = describeProblem(error);
  return show({
    key,
    dismissed: undefined,
    render(box, done) {
      const ok = h("button", { type: "button", class: "primary", onclick: () => done(undefined) }, "Close");
      box.append(panel(title, lines, "error", [ok]));
      box.setAttribute("data-tone", "error");
      return ok;
    },
  });
}

/**
 * Ask before doing something that cannot be taken back.
 * @param {{title: string, message: string|(string|Node)[], confirmLabel: string, danger?: boolean}} options
 * @returns {Promise<boolean>}
 */
export function confirmAction(options) {
  return show({
    dismissed: false,
    render(box, done) {
      const cancel = h("button", { type: "button", onclick: () => done(false) }, "Cancel");
      const ok = h("button", { type: "button", class: options.danger ? "danger" : "primary", onclick: () => done(true) },
        options.confirmLabel);
      box.append(panel(options.title, Array.isArray(options.message) ? options.message : [options.message], "notice",
        [cancel, ok]));
      return cancel;
    },
  });
}

/**
 * A small form in the modal: its fields are checked before `submit` runs; a 400 from the server puts its
 * field errors next to the fields (the others, and any other failure, show in the form). Resolves with
 * what `submit` returned, or null when the reader cancelled.
 * @template R
 * @param {{title: string, intro?: string, fields: Field[], submitLabel: string, danger?: boolean,
 *          submit: (values: Object<string, string>) => Promise<R>}} options
 * @returns {Promise<R|null>}
 */
export function openForm(options) {
  return show({
    dismissed: null,
    render(box, done) {
      const status = h("div", { class: "form-status", role: "alert", id: "modal-form-status" });
      const submitButton = h("button", { type: "submit", class: options.danger ? "danger" : "primary" }, options.submitLabel);
      const cancel = h("button", { type: "button", onclick: () => done(null) }, "Cancel");
      const form = /** @type {HTMLFormElement} */ (h("form", { class: "modal-panel", novalidate: true },
        h("h2", { id: "modal-title" }, options.title),
        options.intro ? h("p", {}, options.intro) : null,
        options.fields.map((field) => field.element),
        status,
        h("div", { class: "modal-actions" }, cancel, submitButton)));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        replaceChildren(status);
        const values = readFields(options.fields);
        if (!values) return;
        submitButton.setAttribute("disabled", "");
        submitButton.setAttribute("aria-busy", "true");
        try {
          done(await options.submit(values));
        } catch (error) {
          const unmatched = error instanceof ApiError ? applyFieldErrors(options.fields, error.problem) : null;
          if (unmatched === null || unmatched.length || !(error instanceof ApiError && error.problem.errors.length)) {
            const { title, lines } = describeProblem(error);
            replaceChildren(status, h("p", {}, h("strong", {}, title)), ...lines);
          }
        } finally {
          submitButton.removeAttribute("disabled");
          submitButton.removeAttribute("aria-busy");
        }
      });
      box.append(form);
      return /** @type {HTMLElement|null} */ (form.querySelector("input, select, textarea"));
    },
  });
}
