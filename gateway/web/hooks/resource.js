// Data fetching with loading and error state: a resource loads, reloads, and tells its listeners.

/**
 * @template T
 * @typedef {object} ResourceState
 * @property {boolean} loading
 * @property {unknown} error the last failure (an ApiError), null after a success
 * @property {T|null} data the last data loaded (kept while reloading, and after a failed reload)
 */

/**
 * @template T
 * @typedef {object} Resource
 * @property {() => ResourceState<T>} state
 * @property {() => Promise<T|null>} reload
 * @property {(predicate: (data: T) => boolean, options?: {intervalMs?: number, timeoutMs?: number}) => Promise<T|null>} pollUntil
 *   reload every interval until `predicate` holds (or the time is up): for effects that arrive by webhook
 * @property {(listener: (state: ResourceState<T>) => void) => void} subscribe
 */

/**
 * @template T
 * @param {() => Promise<T>} load
 * @param {{onError?: (error: unknown) => void}} [options] told about each failure (e.g. the modal)
 * @returns {Resource<T>}
 */
export function useResource(load, options = {}) {
  /** @type {ResourceState<T>} */
  let state = { loading: false, error: null, data: null };
  /** @type {((state: ResourceState<T>) => void)[]} */
  const listeners = [];
  let generation = 0;

  /** @param {Partial<ResourceState<T>>} change */
  function set(change) {
    state = { ...state, ...change };
    for (const listener of listeners) listener(state);
  }

  /** @param {boolean} quiet failures are not reported (polling reports only its last) */
  async function run(quiet) {
    const mine = ++generation;
    set({ loading: true });
    try {
      const data = await load();
      if (mine === generation) set({ loading: false, error: null, data });
      return data;
    } catch (error) {
      if (mine === generation) {
        set({ loading: false, error });
        if (!quiet) options.onError?.(error);
      }
      return null;
    }
  }

  return {
    state: () => state,
    reload: () => run(false),
    async pollUntil(predicate, { intervalMs = 700, timeoutMs = 30_000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const last = Date.now() + intervalMs >= deadline;
        const data = await run(!last);
        if ((data !== null && predicate(data)) || last) return data;
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    },
    subscribe(listener) {
      listeners.push(listener);
      listener(state);
    },
  };
}
