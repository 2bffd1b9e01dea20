// Labelled inputs with their own validation and error text, and the server's field errors put back on them.

import { h, replaceChildren } from "../lib/dom.js";
import { firstError } from "../lib/validation.js";

/** @typedef {import("../lib/validation.js").Check} Check */
/** @typedef {import("../types/api.js").ProblemDetails} ProblemDetails */

/**
 * @typedef {object} Field
 * @property {string} name the API's field name (server errors are matched on it)
 * @property {HTMLElement} element label, input, hint and error, to place in a form
 * @property {HTMLInputElement|HTMLSelectElement} input
 * @property {(message: string|null) => void} setError
 * @property {() => string|null} validate the first failing check, shown
 */

let counter = 0;

/**
 * @param {object} spec
 * @param {string} spec.name
 * @param {string} spec.label
 * @param {"text"|"number"|"date"|"select"|"search"} [spec.type]
 * @param {{value: string, label: string}[]} [spec.options] for a select
 * @param {string} [spec.value]
 * @param {string} [spec.hint]
 * @param {string} [spec.placeholder]
 * @param {string} [spec.inputmode]
 * @param {Check[]} [spec.checks]
 * @returns {Field}
 */
export function field(spec) {
  const id = `f-${spec.name}-${++counter}`;
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  const input = spec.type === "select"
    ? /** @type {HTMLSelectElement} */ (h("select", { id, name: spec.name },
      (spec.options ?? []).map((option) => h("option", { value: option.value }, option.label))))
    : /** @type {HTMLInputElement} */ (h("input", {
      id, name: spec.name, type: spec.type === "number" ? "text" : (spec.type ?? "text"),
      inputmode: spec.inputmode ?? (spec.type === "number" ? "numeric" : undefined),
      placeholder: spec.placeholder, autocomplete: "off",
    }));
  if (spec.value !== undefined) input.value = spec.value;
  const error = h("p", { class: "field-error", id: errorId, "aria-live": "polite" });
  const describedBy = [spec.hint ? hintId : null, errorId].filter(Boolean).join(" ");
  input.setAttribute("aria-describedby", describedBy);
  const element = h("div", { class: "field" },
    h("label", { for: id }, spec.label),
    spec.hint ? h("p", { class: "hint", id: hintId }, spec.hint) : null,
    input,
    error);

  /** @param {string|null} message */
  function setError(message) {
    replaceChildren(error, message ?? "");
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
  input.addEventListener("input", () => setError(null));
  return {
    name: spec.name,
    element,
    input,
    setError,
    validate() {
      const message = firstError(input.value, spec.checks ?? []);
      setError(message);
      return message;
    },
  };
}

/**
 * Every field's value when all pass their checks; otherwise null, the errors shown, the first bad field focused.
 * @param {Field[]} fields
 * @returns {Object<string, string>|null}
 */
export function readFields(fields) {
  /** @type {Object<string, string>} */
  const values = {};
  let firstBad = null;
  for (const f of fields) {
    if (f.validate() && !firstBad) firstBad = f;
    values[f.name] = f.input.value.trim();
  }
  if (firstBad) {
    firstBad.input.focus();
    return null;
  }
  return values;
}

/**
 * Put the server's 400 field errors next to the fields they name; returns the errors no field matched.
 * @param {Field[]} fields
 * @param {ProblemDetails} problem
 */
export function applyFieldErrors(fields, problem) {
  const unmatched = [];
  for (const error of problem.errors) {
    const target = fields.find((f) => f.name === error.field || error.field.startsWith(`${f.name}.`));
    if (target) target.setError(error.message);
    else unmatched.push(error);
  }
  return unmatched;
}

/**
 * A filter bar: fields in a row and an Apply button; `onApply` gets the values when they pass their checks.
 * @param {Field[]} fields
 * @param {(values: Object<string, string>) => void} onApply
 * @param {string} [label]
 */
export function filterForm(fields, onApply, label = "Apply filters") {
  const form = h("form", { class: "filters", novalidate: true }, fields.map((f) => f.element),
    h("div", { class: "filters-actions" }, h("button", { type: "submit" }, label)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = readFields(fields);
    if (values) onApply(values);
  });
  return form;
}
