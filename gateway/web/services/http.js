// Every API call: the bearer token, an Idempotency-Key when the action needs one, JSON in and out,
// and any failure turned into an ApiError carrying the problem+json body.

import { currentToken } from "../lib/token.js";

/** @typedef {import("../types/api.js").ProblemDetails} ProblemDetails */

export class ApiError extends Error {
  /**
   * @param {ProblemDetails} problem
   */
  constructor(problem) {
    super(problem.detail || problem.title);
    this.name = "ApiError";
    this.problem = problem;
  }

  get status() {
    return this.problem.status;
  }
}

/**
 * A problem for a response that carried none (a proxy's error page, a network failure).
 * @param {number} status
 * @param {string} title
 * @param {string} detail
 * @param {string} [requestId]
 * @returns {ProblemDetails}
 */
function localProblem(status, title, detail, requestId = "") {
  return {
    type: "about:blank", title, status, detail, reason: status === 0 ? "NETWORK" : "HTTP_ERROR",
    request_id: requestId, errors: [],
  };
}

/**
 * @typedef {object} CallOptions
 * @property {"GET"|"POST"|"PUT"|"DELETE"} [method]
 * @property {Object<string, string|number|null|undefined>} [query] empty values are left out
 * @property {unknown} [body] sent as JSON
 * @property {string} [idempotencyKey]
 * @property {"json"|"blob"} [as]
 */

/**
 * @param {string} path
 * @param {Object<string, string|number|null|undefined>} [query]
 */
export function withQuery(path, query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * Call the API. Resolves with the parsed JSON (or a Blob with `as: "blob"`); rejects with an ApiError.
 * @param {string} path
 * @param {CallOptions} [options]
 * @returns {Promise<any>}
 */
export async function api(path, options = {}) {
  const token = currentToken();
  if (!token) {
    throw new ApiError(localProblem(401, "Authentication required", "You are not signed in.",));
  }
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json, application/problem+json" };
  if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
  /** @type {RequestInit} */
  const init = { method: options.method ?? "GET", headers, credentials: "omit", cache: "no-store" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(withQuery(path, options.query), init);
  } catch {
    throw new ApiError(localProblem(0, "No connection", "The billing service could not be reached. Check your connection and try again."));
  }
  if (!response.ok) {
    throw new ApiError(await problemOf(response));
  }
  if (options.as === "blob") return response.blob();
  if (response.status === 204) return null;
  return response.json();
}

/** @param {Response} response @returns {Promise<ProblemDetails>} */
async function problemOf(response) {
  const requestId = response.headers.get("X-Request-ID") ?? "";
  const type = response.headers.get("Content-Type") ?? "";
  if (type.includes("json")) {
    try {
      const body = await response.json();
      if (body && typeof body === "object" && typeof body.status === "number") {
        return {
          type: String(body.type ?? "about:blank"),
          title: String(body.title ?? response.statusText),
          status: body.status,
          detail: String(body.detail ?? ""),
          reason: String(body.reason ?? ""),
          request_id: String(body.request_id ?? requestId),
          errors: Array.isArray(body.errors) ? body.errors : [],
        };
      }
    } catch {
      // Not JSON after all: described below.
    }
  }
  return localProblem(response.status, response.statusText || "Request failed",
    `The server answered ${response.status}.`, requestId);
}
