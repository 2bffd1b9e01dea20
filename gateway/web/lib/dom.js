// Building DOM without innerHTML: every text goes in as text, so API data can never become markup.

/**
 * @typedef {string|number|Node|null|undefined|false} Child
 * @typedef {Object<string, any>} Props
 */

/**
 * `h("button", {type: "button", onclick}, "Buy")`: an element with attributes, properties and children.
 * Keys starting with "on" are event listeners; `class`, `for`, `aria-*`, `data-*` and others are attributes.
 * @param {string} tag
 * @param {Props} [props]
 * @param {...(Child|Child[])} children
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "value" || key === "checked" || key === "disabled") {
      /** @type {any} */ (element)[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

/**
 * @param {Element} parent
 * @param {(Child|Child[])[]} children
 */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. @param {Element} parent @param {...(Child|Child[])} children */
export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
}

/** @param {string} id @returns {HTMLElement} */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

/** Label text for an API enum value: "keep_as_draft" → "Keep as draft". @param {string} value */
export function humanize(value) {
  const text = value.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
