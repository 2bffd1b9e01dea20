// A table of one page of a list, with Previous/Next, an optional filter bar and an optional CSV export.

import { h, replaceChildren } from "../lib/dom.js";
import { usePaged } from "../hooks/paged.js";
import { filterForm } from "./form.js";

/**
 * @template T
 * @typedef {object} Column
 * @property {string} label
 * @property {(row: T) => import("../lib/dom.js").Child|import("../lib/dom.js").Child[]} cell
 * @property {string} [className]
 */

/**
 * @template T
 * @typedef {object} PagedTable
 * @property {HTMLElement} element
 * @property {() => Promise<void>} reload back to the first page
 * @property {() => Promise<void>} refresh the current page again
 * @property {import("../hooks/paged.js").Paged<T>} paged
 */

/**
 * @template T
 * @param {object} spec
 * @param {string} spec.id used for the element ids (tests and labels)
 * @param {string} spec.caption
 * @param {Column<T>[]} spec.columns
 * @param {(filters: Object<string, string>, pageToken: string|null) => Promise<{items: T[], next_page_token: string|null}>} spec.fetchPage
 * @param {import("./form.js").Field[]} [spec.filters]
 * @param {(filters: Object<string, string>) => Promise<void>} [spec.exportCsv]
 * @param {string} [spec.emptyText]
 * @param {(error: unknown) => void} spec.onError
 * @param {(row: T) => string} [spec.rowKey]
 * @returns {PagedTable<T>}
 */
export function pagedTable(spec) {
  /** @type {Object<string, string>} */
  let filters = {};
  if (spec.filters) {
    for (const f of spec.filters) if (f.input.value) filters[f.name] = f.input.value.trim();
  }
  const paged = usePaged((token) => spec.fetchPage(filters, token), { onError: spec.onError });
  const tbody = h("tbody");
  const status = h("p", { class: "table-status", "aria-live": "polite", id: `${spec.id}-status` });
  const previous = h("button", { type: "button", onclick: () => paged.previous() }, "Previous");
  const next = h("button", { type: "button", onclick: () => paged.next() }, "Next");
  const pageLabel = h("span", { class: "page-number" });
  const table = h("table", { id: spec.id },
    h("caption", { class: "visually-hidden" }, spec.caption),
    h("thead", {}, h("tr", {}, spec.columns.map((c) => h("th", { scope: "col", class: c.className }, c.label)))),
    tbody);

  const csvButton = spec.exportCsv
    ? h("button", {
      type: "button", class: "link-button", id: `${spec.id}-csv`,
      onclick: async () => {
        try {
          await spec.exportCsv?.(filters);
        } catch (error) {
          spec.onError(error);
        }
      },
    }, "Export CSV")
    : null;

  paged.resource.subscribe((state) => {
    const rows = state.data?.items ?? [];
    replaceChildren(tbody, rows.map((row) => h("tr", { "data-key": spec.rowKey?.(row) },
      spec.columns.map((c) => h("td", { class: c.className, "data-label": c.label }, c.cell(row))))));
    if (state.loading) replaceChildren(status, "Loading…");
    else if (state.error && !state.data) replaceChildren(status, "Could not load this list.");
    else if (!rows.length) replaceChildren(status, spec.emptyText ?? "Nothing to show.");
    else replaceChildren(status);
    table.setAttribute("aria-busy", state.loading ? "true" : "false");
    previous.toggleAttribute("disabled", state.loading || !paged.hasPrevious());
    next.toggleAttribute("disabled", state.loading || !paged.hasNext());
    replaceChildren(pageLabel, `Page ${paged.pageNumber()}`);
  });

  const element = h("div", { class: "paged-table" },
    spec.filters ? filterForm(spec.filters, (values) => {
      filters = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== ""));
      paged.first();
    }) : null,
    csvButton ? h("div", { class: "table-tools" }, csvButton) : null,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": spec.caption }, table),
    status,
    h("div", { class: "pager" }, previous, pageLabel, next));
  return {
    element,
    paged,
    reload: () => paged.first(),
    refresh: async () => {
      await paged.resource.reload();
    },
  };
}

/**
 * Save a Blob as a file through a temporary link (a CSV the API sent for the bearer token).
 * @param {Blob} blob
 * @param {string} filename
 */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, class: "visually-hidden" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
