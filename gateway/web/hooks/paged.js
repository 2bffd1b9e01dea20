// A paged list: the current page, the tokens of the pages before it, loading and error state.

import { useResource } from "./resource.js";

/**
 * @template T
 * @typedef {{items: T[], next_page_token: string|null}} Page
 */

/**
 * @template T
 * @typedef {object} Paged
 * @property {import("./resource.js").Resource<Page<T>>} resource
 * @property {() => number} pageNumber 1-based
 * @property {() => boolean} hasPrevious
 * @property {() => boolean} hasNext
 * @property {() => Promise<void>} first
 * @property {() => Promise<void>} next
 * @property {() => Promise<void>} previous
 */

/**
 * @template T
 * @param {(pageToken: string|null) => Promise<Page<T>>} fetchPage
 * @param {{onError?: (error: unknown) => void}} [options]
 * @returns {Paged<T>}
 */
export function usePaged(fetchPage, options = {}) {
  /** @type {(string|null)[]} the token of each page up to the current one; [null] on the first */
  let tokens = [null];
  const resource = useResource(() => fetchPage(tokens[tokens.length - 1]), options);
  return {
    resource,
    pageNumber: () => tokens.length,
    hasPrevious: () => tokens.length > 1,
    hasNext: () => Boolean(resource.state().data?.next_page_token),
    async first() {
      tokens = [null];
      await resource.reload();
    },
    async next() {
      const token = resource.state().data?.next_page_token;
      if (!token) return;
      tokens = [...tokens, token];
      if ((await resource.reload()) === null) tokens = tokens.slice(0, -1);
    },
    async previous() {
      if (tokens.length < 2) return;
      tokens = tokens.slice(0, -1);
      await resource.reload();
    },
  };
}
