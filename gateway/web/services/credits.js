// The credit wallet: GET /api/credits/balance and /api/credits/ledger.

import { api } from "./http.js";

/** @typedef {import("../types/api.js").Balance} Balance */
/** @typedef {import("../types/api.js").LedgerPage} LedgerPage */

/** @param {string} [userId] another user's (admins only) @returns {Promise<Balance>} */
export function getBalance(userId) {
  return api("/api/credits/balance", { query: { user_id: userId } });
}

/**
 * @param {{pageToken?: string|null, pageSize?: number}} [page]
 * @returns {Promise<LedgerPage>}
 */
export function getLedger(page = {}) {
  return api("/api/credits/ledger", { query: { page_size: page.pageSize ?? 10, page_token: page.pageToken } });
}
