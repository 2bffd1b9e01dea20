// Plans, the user's subscriptions and every change to them, and the Stripe Customer Portal.

import { api } from "./http.js";

/** @typedef {import("../types/api.js").Plan} Plan */
/** @typedef {import("../types/api.js").Subscription} Subscription */
/** @typedef {import("../types/api.js").PauseBehavior} PauseBehavior */
/** @typedef {import("../types/api.js").ProrationBehavior} ProrationBehavior */

const path = (/** @type {string} */ id) => `/api/subscriptions/${encodeURIComponent(id)}`;

/** @returns {Promise<{plans: Plan[]}>} */
export function listPlans() {
  return api("/api/plans");
}

/**
 * @param {string} userId
 * @param {{pageToken?: string|null, pageSize?: number}} [page]
 * @returns {Promise<{subscriptions: Subscription[], next_page_token: string|null}>}
 */
export function listSubscriptions(userId, page = {}) {
  return api(path(userId), { query: { page_size: page.pageSize ?? 20, page_token: page.pageToken } });
}

/**
 * @param {string} id
 * @param {{plan_id?: string, quantity?: number, proration_behavior?: ProrationBehavior}} change
 * @param {string} key
 * @returns {Promise<{subscription: Subscription}>}
 */
export function changeSubscription(id, change, key) {
  return api(path(id), { method: "PUT", body: change, idempotencyKey: key });
}

/**
 * @param {string} id
 * @param {{at_period_end: boolean, reason?: string}} how
 * @param {string} key
 * @returns {Promise<{subscription: Subscription}>}
 */
export function cancelSubscription(id, how, key) {
  return api(path(id), { method: "DELETE", body: how, idempotencyKey: key });
}

/** @param {string} id @param {string} key @returns {Promise<{subscription: Subscription}>} */
export function reactivateSubscription(id, key) {
  return api(`${path(id)}/reactivate`, { method: "POST", idempotencyKey: key });
}

/**
 * @param {string} id
 * @param {{behavior: PauseBehavior, resumes_at?: string}} how
 * @param {string} key
 * @returns {Promise<{subscription: Subscription}>}
 */
export function pauseSubscription(id, how, key) {
  return api(`${path(id)}/pause`, { method: "POST", body: how, idempotencyKey: key });
}

/** @param {string} id @param {string} key @returns {Promise<{subscription: Subscription}>} */
export function resumeSubscription(id, key) {
  return api(`${path(id)}/resume`, { method: "POST", idempotencyKey: key });
}

/** @param {string} returnUrl @param {string} key @returns {Promise<{url: string}>} */
export function openCustomerPortal(returnUrl, key) {
  return api("/api/stripe/customer-portal", { method: "POST", body: { return_url: returnUrl }, idempotencyKey: key });
}
