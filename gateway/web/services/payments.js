// Credit packages, Checkout for them, and the user's payments.

import { api } from "./http.js";

/** @typedef {import("../types/api.js").CreditPackage} CreditPackage */
/** @typedef {import("../types/api.js").CheckoutSessionCreated} CheckoutSessionCreated */
/** @typedef {import("../types/api.js").Payment} Payment */

/** @returns {Promise<{packages: CreditPackage[]}>} */
export function listPackages() {
  return api("/api/credit-packages");
}

/**
 * A Checkout Session for a package (or, with `plan_id`, a plan): send the customer to its `url`.
 * @param {{package_id?: string, plan_id?: string, currency?: string, interval?: string, success_url: string, cancel_url: string}} body
 * @param {string} idempotencyKey
 * @returns {Promise<CheckoutSessionCreated>}
 */
export function createCheckoutSession(body, idempotencyKey) {
  return api("/api/stripe/create-checkout-session", { method: "POST", body, idempotencyKey });
}

/**
 * @param {{pageToken?: string|null, pageSize?: number}} [page]
 * @returns {Promise<{payments: Payment[], next_page_token: string|null}>}
 */
export function listPayments(page = {}) {
  return api("/api/payments", { query: { page_size: page.pageSize ?? 10, page_token: page.pageToken } });
}

/** @param {string} paymentId @returns {Promise<Payment>} */
export function getPayment(paymentId) {
  return api(`/api/payments/${encodeURIComponent(paymentId)}`);
}
