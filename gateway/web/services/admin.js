// The admin endpoints (every one refuses a caller without the admin role).

import { api, withQuery } from "./http.js";

/** @typedef {import("../types/api.js").FinancialDashboard} FinancialDashboard */
/** @typedef {import("../types/api.js").AdminTransaction} AdminTransaction */
/** @typedef {import("../types/api.js").AdminTransfer} AdminTransfer */
/** @typedef {import("../types/api.js").Subscription} Subscription */
/** @typedef {import("../types/api.js").WebhookEvent} WebhookEvent */
/** @typedef {import("../types/api.js").AuditRecord} AuditRecord */
/** @typedef {Object<string, string>} Filters */

/** @param {{since: string, until: string}} range @returns {Promise<FinancialDashboard>} */
export function getDashboard(range) {
  return api("/api/admin/financial-dashboard", { query: range });
}

/**
 * A list endpoint: filters, paging, and the key its items come under.
 * @template T
 * @typedef {object} AdminList
 * @property {string} path
 * @property {string} key
 * @property {(filters: Filters, pageToken: string|null, pageSize: number) =>
 *   Promise<{items: T[], next_page_token: string|null}>} fetchPage
 * @property {(filters: Filters) => Promise<Blob>} csv
 */

/**
 * @template T
 * @param {string} path
 * @param {string} key
 * @returns {AdminList<T>}
 */
function adminList(path, key) {
  return {
    path,
    key,
    async fetchPage(filters, pageToken, pageSize) {
      const body = await api(path, { query: { ...filters, page_size: pageSize, page_token: pageToken } });
      return { items: body[key] ?? [], next_page_token: body.next_page_token ?? null };
    },
    csv(filters) {
      return api(path, { query: { ...filters, format: "csv" }, as: "blob" });
    },
  };
}

/** @type {AdminList<AdminTransaction>} */
export const transactions = adminList("/api/admin/transactions", "transactions");
/** @type {AdminList<Subscription>} */
export const subscriptions = adminList("/api/admin/subscriptions", "subscriptions");
/** @type {AdminList<AdminTransfer>} */
export const transfers = adminList("/api/admin/ledger/transfers", "transfers");
/** @type {AdminList<WebhookEvent>} */
export const webhookEvents = adminList("/api/admin/webhook-events", "events");
/** @type {AdminList<AuditRecord>} */
export const auditLog = adminList("/api/admin/audit-log", "records");

/**
 * @param {string} paymentId
 * @param {{amount_minor?: number, reason?: string}} body
 * @param {string} key
 */
export function refundPayment(paymentId, body, key) {
  return api(`/api/admin/payments/${encodeURIComponent(paymentId)}/refund`, { method: "POST", body, idempotencyKey: key });
}

/** @param {string} service @param {string} eventId @param {string} key @returns {Promise<{event: WebhookEvent}>} */
export function redriveEvent(service, eventId, key) {
  const path = `/api/admin/webhook-events/${encodeURIComponent(service)}/${encodeURIComponent(eventId)}/redrive`;
  return api(path, { method: "POST", idempotencyKey: key });
}

/**
 * @param {{user_id: string, amount: number, source: "promotion"|"adjustment", description?: string}} body
 * @param {string} key
 */
export function grantCredits(body, key) {
  return api("/api/admin/credits/grants", { method: "POST", body, idempotencyKey: key });
}

export { withQuery };
