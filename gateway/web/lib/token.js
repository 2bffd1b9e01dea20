// The bearer token: handed over once in the URL fragment (#token=<JWT>), then kept in sessionStorage
// for this tab only and removed from the address bar (so it is neither bookmarked nor shared).

const STORAGE_KEY = "billing.token";

/** @typedef {import("../types/api.js").TokenClaims} TokenClaims */

/**
 * Move a token from the URL fragment into sessionStorage, and drop the fragment.
 * @param {Location} location
 * @param {History} history
 */
export function adoptTokenFromFragment(location = window.location, history = window.history) {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = fragment.get("token");
  if (token === null) return;
  if (token) sessionStorage.setItem(STORAGE_KEY, token);
  history.replaceState(history.state, "", location.pathname + location.search);
}

/** @returns {string|null} */
export function currentToken() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/**
 * The token's claims, decoded without checking the signature: for display and for paths only.
 * @param {string|null} token
 * @returns {TokenClaims|null}
 */
export function claimsOf(token) {
  if (!token) return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(parts[1].length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims.sub !== "string") return null;
    return { sub: claims.sub, roles: Array.isArray(claims.roles) ? claims.roles : [], exp: Number(claims.exp) };
  } catch {
    return null;
  }
}

/** @param {TokenClaims|null} claims */
export function isExpired(claims) {
  return !claims || (Number.isFinite(claims.exp) && claims.exp * 1000 <= Date.now());
}
