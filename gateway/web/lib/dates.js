// Timestamps from the API are RFC 3339 in UTC; they are shown in the reader's locale.

/** @param {string|null|undefined} value */
export function formatDateTime(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** @param {string|null|undefined} value */
export function formatDate(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  return date.toLocaleDateString(undefined, { dateStyle: "medium" });
}

/** YYYY-MM-DD of a Date, in UTC. @param {Date} date */
export function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

/** The date `days` days before today (UTC), as YYYY-MM-DD. @param {number} days */
export function daysAgo(days) {
  return isoDate(new Date(Date.now() - days * 86_400_000));
}

/** A YYYY-MM-DD date as the RFC 3339 timestamp of its midnight, UTC. @param {string} day */
export function startOfDayUtc(day) {
  return `${day}T00:00:00Z`;
}

/** The day `days` after a YYYY-MM-DD day (before, when negative). @param {string} day @param {number} days */
export function addDays(day, days) {
  return isoDate(new Date(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000));
}

/**
 * Date filters as the API takes them: `since` the start of its day, `until` the start of the day after
 * (the API's `until` is excluded; the reader's "through" day is included).
 * @param {Object<string, string>} filters
 */
export function dayRangeFilters(filters) {
  const out = { ...filters };
  if (out.since) out.since = startOfDayUtc(out.since);
  if (out.until) out.until = startOfDayUtc(addDays(out.until, 1));
  return out;
}
