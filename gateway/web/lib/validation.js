// Form input checked before it is sent; each check returns an error message or null.

/** @typedef {(value: string) => string|null} Check */

/** @type {Check} */
export const required = (value) => (value.trim() === "" ? "Required." : null);

/**
 * A whole number from min to max (the empty string passes: pair it with `required` when needed).
 * @param {number} min
 * @param {number} [max]
 * @returns {Check}
 */
export const integerBetween = (min, max = Number.MAX_SAFE_INTEGER) => (value) => {
  if (value.trim() === "") return null;
  if (!/^\d+$/.test(value.trim())) return "Enter a whole number, without decimals or signs.";
  const number = Number(value.trim());
  if (number < min) return `Enter at least ${min}.`;
  if (number > max) return `Enter at most ${max}.`;
  return null;
};

/** @type {Check} */
export const positiveInteger = integerBetween(1);

/** @type {Check} */
export const isoDay = (value) => {
  if (value === "") return null;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value) || Number.isNaN(Date.parse(`${value}T00:00:00Z`))) {
    return "Enter a date as YYYY-MM-DD.";
  }
  return null;
};

/** @type {Check} */
export const futureDay = (value) => {
  const bad = isoDay(value);
  if (bad || value === "") return bad;
  return Date.parse(`${value}T00:00:00Z`) > Date.now() ? null : "Choose a date in the future.";
};

/** A user id as the API accepts it. @type {Check} */
export const userId = (value) => {
  if (value === "") return null;
  return /^[A-Za-z0-9_.:@-]{1,128}$/.test(value) ? null : "Letters, digits and _ - . : @ only (up to 128).";
};

/** @param {number} max @returns {Check} */
export const maxLength = (max) => (value) => (value.length > max ? `At most ${max} characters.` : null);

/**
 * The first error of `checks` for `value`, or null.
 * @param {string} value
 * @param {Check[]} checks
 */
export function firstError(value, checks) {
  for (const check of checks) {
    const error = check(value);
    if (error) return error;
  }
  return null;
}
