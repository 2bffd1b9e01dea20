// A status shown as a word in a coloured pill (the word carries the meaning; colour only helps).

import { h, humanize } from "../lib/dom.js";

const TONES = /** @type {Object<string, string>} */ ({
  active: "good", succeeded: "good", trialing: "good", processed: "good", paid: "good",
  paused: "warn", past_due: "warn", pending: "warn", processing: "warn", partially_refunded: "warn", incomplete: "warn",
  canceled: "bad", failed: "bad", refunded: "bad", unpaid: "bad", expired: "bad", incomplete_expired: "bad",
});

/** @param {string} status */
export function badge(status) {
  return h("span", { class: `badge ${TONES[status] ?? "neutral"}`, "data-status": status }, humanize(status));
}
