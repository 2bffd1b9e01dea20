// The admin financial dashboard: figures and the revenue chart for a period, a user's wallet, and the
// transactions, subscriptions, ledger transfers, webhook events and audit log, each filtered and paged,
// with CSV export; refunds and webhook re-drives behind a confirmation. Every figure comes from the
// admin endpoints, which refuse a caller without the admin role.

import { adoptTokenFromFragment, claimsOf, currentToken, isExpired } from "./lib/token.js";
import { byId, h, humanize, replaceChildren } from "./lib/dom.js";
import { formatCredits, formatMoney, formatPrice } from "./lib/money.js";
import { addDays, dayRangeFilters, daysAgo, formatDateTime, isoDate } from "./lib/dates.js";
import { integerBetween, isoDay, maxLength, positiveInteger, required, userId as userIdCheck } from "./lib/validation.js";
import { newIdempotencyKey } from "./lib/ids.js";
import { useResource } from "./hooks/resource.js";
import { confirmAction, notify, openForm, setModalWording, showProblem } from "./components/modal.js";
import { field, filterForm } from "./components/form.js";
import { pagedTable, saveBlob } from "./components/table.js";
import { revenueChart } from "./components/chart.js";
import { badge } from "./components/badge.js";
import { ApiError } from "./services/http.js";
import { getBalance } from "./services/credits.js";
import * as admin from "./services/admin.js";

/** @typedef {import("./types/api.js").FinancialDashboard} FinancialDashboard */
/** @typedef {import("./types/api.js").AdminTransaction} AdminTransaction */
/** @typedef {import("./types/api.js").AdminTransfer} AdminTransfer */
/** @typedef {import("./types/api.js").Subscription} Subscription */
/** @typedef {import("./types/api.js").WebhookEvent} WebhookEvent */
/** @typedef {import("./types/api.js").AuditRecord} AuditRecord */

const PAGE_SIZE = 20;
const REFUNDABLE = new Set(["succeeded", "partially_refunded"]);

let denied = false;

/** Failures: the first 403 means this is no admin; the page then stops asking for anything. */
function onError(/** @type {unknown} */ error) {
  if (error instanceof ApiError && error.status === 403) {
    if (denied) return;
    denied = true;
  }
  showProblem(error);
}

/** @param {string} label @param {string|number} value @param {string} [id] */
function figure(label, value, id) {
  return h("div", { class: "figure-card", id }, h("p", { class: "figure-label" }, label), h("p", { class: "figure-value" }, value));
}

/**
 * @param {string} name
 * @param {admin.AdminList<any>} list
 */
function csvSaver(name, list) {
  return async (/** @type {Object<string,string>} */ filters) => {
    saveBlob(await list.csv(filters), `${name}-${isoDate(new Date())}.csv`);
  };
}

function serviceOptions() {
  return [{ value: "", label: "All" }, { value: "payments", label: "Payments" }, { value: "subscriptions", label: "Subscriptions" }];
}

function dateFilters() {
  return [
    field({ name: "since", label: "From", type: "date", checks: [isoDay] }),
    field({ name: "until", label: "Through", type: "date", checks: [isoDay] }),
  ];
}

async function start() {
  adoptTokenFromFragment();
  setModalWording({
    forbidden: "Admin access is needed to see this page. Sign in with an administrator account.",
  });
  const claims = claimsOf(currentToken());
  if (!claims || isExpired(claims)) {
    showProblem(new ApiError({ type: "about:blank", title: "Please sign in again", status: 401, detail: "",
      reason: "UNAUTHENTICATED", request_id: "", errors: [] }));
    return;
  }
  replaceChildren(byId("signed-in-as"), "Signed in as ", h("strong", {}, claims.sub));

  // --- the period and its figures ---------------------------------------------------------
  let range = { since: daysAgo(29), until: isoDate(new Date()) };
  // The API's `until` is the day after the last: the reader picks the last day itself.
  const dashboard = useResource(() => admin.getDashboard({ since: range.since, until: addDays(range.until, 1) }), { onError });
  const since = field({ name: "since", label: "From", type: "date", value: range.since, checks: [required, isoDay] });
  const until = field({ name: "until", label: "Through", type: "date", value: range.until, checks: [required, isoDay] });
  byId("range").append(filterForm([since, until], (values) => {
    if (values.since > values.until) {
      until.setError("The end must not be before the start.");
      return;
    }
    range = { since: values.since, until: values.until };
    dashboard.reload();
  }, "Show period"));

  let chartCurrency = "";
  dashboard.subscribe((state) => renderDashboard(state.data, state.loading));

  /** @param {FinancialDashboard|null} data @param {boolean} loading */
  function renderDashboard(data, loading) {
    const figures = byId("figures");
    figures.setAttribute("aria-busy", String(loading));
    if (!data) {
      if (!loading) replaceChildren(figures, h("p", { class: "muted" }, "The figures are unavailable."));
      return;
    }
    const missing = byId("missing");
    if (data.missing?.length) {
      missing.hidden = false;
      replaceChildren(missing, `Some figures are unavailable right now: ${data.missing.map(humanize).join(", ")}.`);
    } else {
      missing.hidden = true;
    }
    /** @type {HTMLElement[]} */
    const groups = [];
    if (data.revenue) {
      groups.push(h("div", { class: "figure-group", id: "figures-revenue" }, h("h3", {}, "Revenue"),
        data.revenue.totals.length ? data.revenue.totals.map((t) => h("div", { class: "figure-row", "data-currency": t.currency },
          figure(`Gross (${t.currency.toUpperCase()})`, formatMoney(t.gross_minor, t.currency), `gross-${t.currency}`),
          figure("Refunds", formatMoney(t.refunds_minor, t.currency), `refunds-${t.currency}`),
          figure("Net", formatMoney(t.net_minor, t.currency), `net-${t.currency}`),
          figure("Payments", formatCredits(t.payments), `payments-${t.currency}`),
          figure("Refunds made", formatCredits(t.refund_count), `refund-count-${t.currency}`)))
          : h("p", { class: "muted" }, "No revenue in this period.")));
    } else {
      groups.push(unavailable("Revenue", "figures-revenue"));
    }
    if (data.subscriptions) {
      const s = data.subscriptions;
      groups.push(h("div", { class: "figure-group", id: "figures-subscriptions" }, h("h3", {}, "Subscriptions"),
        h("div", { class: "figure-row" },
          ...s.recurring.flatMap((r) => [
            figure(`MRR (${r.currency.toUpperCase()})`, formatMoney(r.mrr_minor, r.currency)),
            figure(`ARR (${r.currency.toUpperCase()})`, formatMoney(r.arr_minor, r.currency))]),
          ...(s.invoice_revenue || []).map((r) =>
            figure(`Invoices paid (${r.currency.toUpperCase()})`, formatMoney(r.paid_minor, r.currency),
              `invoices-${r.currency}`)),
          figure("New", formatCredits(s.new), "subscriptions-new"),
          figure("Churned", formatCredits(s.churned), "subscriptions-churned"),
          ...Object.entries(s.by_status).map(([status, n]) => figure(humanize(status), formatCredits(n))))));
    } else {
      groups.push(unavailable("Subscriptions", "figures-subscriptions"));
    }
    if (data.credits) {
      const c = data.credits;
      groups.push(h("div", { class: "figure-group", id: "figures-credits" }, h("h3", {}, "Credits"),
        h("div", { class: "figure-row" },
          figure("Granted", formatCredits(c.granted), "credits-granted"),
          figure("Spent", formatCredits(c.spent), "credits-spent"),
          figure("Reversed", formatCredits(c.reversed), "credits-reversed"),
          figure("Expired", formatCredits(c.expired), "credits-expired"),
          figure("Outstanding", formatCredits(c.outstanding), "credits-outstanding"),
          ...Object.entries(c.granted_by_source ?? {}).map(([source, n]) => figure(`Granted: ${humanize(source)}`, formatCredits(n))))));
    } else {
      groups.push(unavailable("Credits", "figures-credits"));
    }
    if (data.liability) {
      const l = data.liability;
      const values = (/** @type {Money[]} */ list) => list.length ? list.map((m) => formatMoney(m.amount_minor, m.currency)).join(" + ") : "none";
      groups.push(h("div", { class: "figure-group", id: "figures-liability" }, h("h3", {}, "Credit liability (now)"),
        h("div", { class: "figure-row" },
          ...l.categories.map((c) => figure(`Outstanding: ${humanize(c.category)}`,
            `${formatCredits(c.credits + c.held)} (${values(c.value)})`, `liability-${c.category}`)),
          figure("Held", formatCredits(l.categories.reduce((n, c) => n + c.held, 0)), "liability-held"),
          figure("Deferred revenue", values(l.deferred_revenue), "deferred-revenue")),
        h("h4", {}, "Breakage: credits expired unused, last 12 months"),
        l.breakage.length ? h("div", { class: "figure-row", id: "breakage" },
          ...l.breakage.map((b) => figure(`${b.month} ${humanize(b.category)}`,
            `${formatCredits(b.credits)} (${values(b.value)})`, `breakage-${b.month}-${b.category}`)))
          : h("p", { class: "muted" }, "No credits expired unused.")));
    } else {
      groups.push(unavailable("Credit liability", "figures-liability"));
    }
    replaceChildren(figures, groups);
    renderChart(data);
  }

  /** @param {string} title @param {string} id */
  function unavailable(title, id) {
    return h("div", { class: "figure-group unavailable", id }, h("h3", {}, title), h("p", { class: "muted" }, "Unavailable."));
  }

  /** @param {FinancialDashboard} data */
  function renderChart(data) {
    const box = byId("chart");
    const controls = byId("chart-controls");
    if (!data.revenue) {
      replaceChildren(controls);
      replaceChildren(box, h("p", { class: "muted" }, "Revenue is unavailable."));
      return;
    }
    const currencies = [...new Set([...data.revenue.totals.map((t) => t.currency), ...data.revenue.daily.map((d) => d.currency)])];
    if (!currencies.length) {
      replaceChildren(controls);
      replaceChildren(box, h("p", { class: "muted" }, "No revenue in this period."));
      return;
    }
    if (!currencies.includes(chartCurrency)) chartCurrency = currencies[0];
    if (currencies.length > 1) {
      const select = field({ name: "currency", label: "Currency", type: "select",
        options: currencies.map((c) => ({ value: c, label: c.toUpperCase() })), value: chartCurrency });
      select.input.addEventListener("change", () => {
        chartCurrency = select.input.value;
        renderChart(data);
      });
      replaceChildren(controls, select.element);
    } else {
      replaceChildren(controls);
    }
    replaceChildren(box, revenueChart(data.revenue.daily, chartCurrency, { since: data.range.since, until: addDays(data.range.until, -1) }),
      h("p", { class: "legend" }, h("span", { class: "key gross" }), "Gross ", h("span", { class: "key refunds" }), "Refunds"));
  }

  // --- a user's wallet ---------------------------------------------------------------------
  const lookupUser = field({ name: "user_id", label: "User id", checks: [required, userIdCheck] });
  const walletBox = h("div", { id: "user-wallet", "aria-live": "polite" });
  let walletUser = "";
  const wallet = useResource(() => getBalance(walletUser), { onError });
  wallet.subscribe((state) => {
    if (!state.data) {
      replaceChildren(walletBox, state.loading ? "Loading…" : "");
      return;
    }
    const grant = h("button", { type: "button", onclick: () => grantTo(state.data?.user_id ?? "") }, "Grant credits");
    replaceChildren(walletBox,
      h("p", {}, h("strong", {}, state.data.user_id), ": ",
        h("span", { id: "user-balance" }, formatCredits(state.data.balance)), " credits"),
      grant);
  });
  byId("user-lookup").append(filterForm([lookupUser], (values) => {
    walletUser = values.user_id;
    wallet.reload();
  }, "Show balance"), walletBox);

  /** @param {string} user */
  function grantTo(user) {
    const amount = field({ name: "amount", label: "Credits", type: "number", checks: [required, integerBetween(1, 1_000_000_000_000)] });
    const source = field({ name: "source", label: "Kind", type: "select",
      options: [{ value: "promotion", label: "Promotion" }, { value: "adjustment", label: "Adjustment" }] });
    const description = field({ name: "description", label: "Description (shown in the ledger)", checks: [maxLength(500)] });
    /** @type {Map<string, string>} */
    const keys = new Map();
    openForm({
      title: `Grant credits to ${user}`, fields: [amount, source, description], submitLabel: "Grant",
      submit: async (values) => {
        const body = { user_id: user, amount: Number(values.amount), source: /** @type {any} */ (values.source),
          ...(values.description ? { description: values.description } : {}) };
        const text = JSON.stringify(body);
        if (!keys.has(text)) keys.set(text, newIdempotencyKey());
        const result = await admin.grantCredits(body, /** @type {string} */ (keys.get(text)));
        wallet.reload();
        transfers.reload();
        return result;
      },
    }).then((result) => {
      if (result) notify("Credits granted", `${formatCredits(result.transfer.amount)} credits granted to ${user}.`);
    });
  }

  // --- the lists -------------------------------------------------------------------------------
  /** @type {import("./components/table.js").PagedTable<AdminTransaction>} */
  const transactions = pagedTable({
    id: "transactions-table", caption: "Payments and refunds, newest first", onError,
    rowKey: (t) => t.id,
    filters: [
      field({ name: "user_id", label: "User id", checks: [userIdCheck] }),
      field({ name: "kind", label: "Kind", type: "select", options: [
        { value: "", label: "All" }, { value: "payment", label: "Payments" }, { value: "refund", label: "Refunds" }] }),
      ...dateFilters(),
    ],
    fetchPage: (filters, token) => admin.transactions.fetchPage(dayRangeFilters(filters), token, PAGE_SIZE),
    exportCsv: (filters) => csvSaver("transactions", admin.transactions)(dayRangeFilters(filters)),
    emptyText: "No transactions match.",
    columns: [
      { label: "Date", cell: (t) => formatDateTime(t.created_at) },
      { label: "Kind", cell: (t) => humanize(t.kind) },
      { label: "User", cell: (t) => t.user_id },
      { label: "Amount", className: "num", cell: (t) => formatPrice(t.amount) },
      { label: "Status", cell: (t) => badge(t.status) },
      { label: "Payment", cell: (t) => h("code", {}, t.payment_id) },
      { label: "Receipt", cell: (t) => (t.receipt_url ? h("a", { href: t.receipt_url, target: "_blank", rel: "noopener noreferrer" }, "Receipt") : "—") },
      {
        label: "Actions",
        cell: (t) => (t.kind === "payment" && REFUNDABLE.has(t.status)
          ? h("button", { type: "button", class: "danger-outline action-refund", onclick: () => refund(t) }, "Refund")
          : ""),
      },
    ],
  });
  byId("transactions").append(transactions.element);

  /** @param {AdminTransaction} t */
  async function refund(t) {
    const amount = field({ name: "amount_minor", label: `Amount in minor units (${t.amount.currency.toUpperCase()} cents)`,
      type: "number", hint: "Leave empty to refund all that is left.", checks: [positiveInteger] });
    const reason = field({ name: "reason", label: "Reason", type: "select", options: [
      { value: "requested_by_customer", label: "Requested by the customer" },
      { value: "duplicate", label: "Duplicate" }, { value: "fraudulent", label: "Fraudulent" }] });
    /** @type {Map<string, string>} */
    const keys = new Map();
    const done = await openForm({
      title: "Refund this payment?",
      intro: `${formatPrice(t.amount)} paid by ${t.user_id}. The credits still in the wallet are taken back. This cannot be undone.`,
      fields: [amount, reason], submitLabel: "Refund", danger: true,
      submit: async (values) => {
        const body = { reason: values.reason, ...(values.amount_minor ? { amount_minor: Number(values.amount_minor) } : {}) };
        const text = JSON.stringify(body);
        if (!keys.has(text)) keys.set(text, newIdempotencyKey());
        const before = await getBalance(t.user_id).then((b) => b.balance, () => null);
        const result = await admin.refundPayment(t.payment_id, body, /** @type {string} */ (keys.get(text)));
        return { result, before };
      },
    });
    if (!done) return;
    const refunded = done.result?.amount ? formatPrice(done.result.amount) : "The payment was";
    notify("Refund issued", `${refunded} refunded. The figures update as Stripe confirms it.`);
    transactions.refresh();
    dashboard.reload();
    // The credits are taken back once Stripe's refund event is processed: show the wallet until they are.
    walletUser = t.user_id;
    lookupUser.input.value = t.user_id;
    await wallet.pollUntil((b) => done.before === null || b.balance !== done.before);
    transactions.refresh();
    dashboard.reload();
    transfers.reload();
  }

  /** @type {import("./components/table.js").PagedTable<Subscription>} */
  const subscriptions = pagedTable({
    id: "subscriptions-table", caption: "Subscriptions, newest first", onError,
    rowKey: (s) => s.id,
    filters: [field({ name: "status", label: "Status", type: "select", options: [{ value: "", label: "All" },
      ...["active", "trialing", "past_due", "paused", "canceled", "incomplete", "unpaid"].map((s) => ({ value: s, label: humanize(s) }))] })],
    fetchPage: (filters, token) => admin.subscriptions.fetchPage(filters, token, PAGE_SIZE),
    exportCsv: csvSaver("subscriptions", admin.subscriptions),
    emptyText: "No subscriptions match.",
    columns: [
      { label: "Created", cell: (s) => formatDateTime(s.created_at) },
      { label: "User", cell: (s) => s.user_id },
      { label: "Plan", cell: (s) => s.plan_id },
      { label: "Status", cell: (s) => badge(s.pause_collection ? "paused" : s.status) },
      { label: "Period ends", cell: (s) => formatDateTime(s.current_period_end) },
      { label: "Cancels", cell: (s) => (s.cancel_at_period_end ? "At period end" : "—") },
    ],
  });
  byId("subscriptions").append(subscriptions.element);

  /** @type {import("./components/table.js").PagedTable<AdminTransfer>} */
  const transfers = pagedTable({
    id: "transfers-table", caption: "Credit transfers, newest first", onError,
    rowKey: (t) => t.id,
    filters: [
      field({ name: "user_id", label: "User id", checks: [userIdCheck] }),
      field({ name: "kind", label: "Kind", type: "select", options: [{ value: "", label: "All" },
        { value: "grant", label: "Grants" }, { value: "spend", label: "Spends" }, { value: "reversal", label: "Reversals" }] }),
      ...dateFilters(),
    ],
    fetchPage: (filters, token) => admin.transfers.fetchPage(dayRangeFilters(filters), token, PAGE_SIZE),
    exportCsv: (filters) => csvSaver("transfers", admin.transfers)(dayRangeFilters(filters)),
    emptyText: "No transfers match.",
    columns: [
      { label: "Date", cell: (t) => formatDateTime(t.created_at) },
      { label: "Kind", cell: (t) => humanize(t.kind) },
      { label: "User", cell: (t) => t.user_id },
      { label: "Credits", className: "num", cell: (t) => formatCredits(t.amount) },
      { label: "Source", cell: (t) => (t.source ? humanize(t.source) : "—") },
      { label: "Reference", cell: (t) => h("code", {}, t.reference) },
      { label: "By", cell: (t) => t.actor },
      { label: "Reversed", className: "num", cell: (t) => formatCredits(t.reversed_amount) },
    ],
  });
  byId("transfers").append(transfers.element);

  /** @type {import("./components/table.js").PagedTable<WebhookEvent>} */
  const events = pagedTable({
    id: "events-table", caption: "Stripe webhook events, newest first", onError,
    rowKey: (e) => `${e.service}:${e.event_id}`,
    filters: [
      field({ name: "service", label: "Service", type: "select", options: serviceOptions() }),
      field({ name: "status", label: "Status", checks: [maxLength(64)] }),
      field({ name: "type", label: "Event type", placeholder: "invoice.paid", checks: [maxLength(128)] }),
    ],
    fetchPage: (filters, token) => admin.webhookEvents.fetchPage(filters, token, PAGE_SIZE),
    exportCsv: csvSaver("webhook-events", admin.webhookEvents),
    emptyText: "No events match.",
    columns: [
      { label: "Received", cell: (e) => formatDateTime(e.received_at) },
      { label: "Service", cell: (e) => humanize(e.service) },
      { label: "Type", cell: (e) => e.type },
      { label: "Status", cell: (e) => badge(e.status) },
      { label: "Detail", cell: (e) => e.detail ?? "" },
      { label: "Re-drives", className: "num", cell: (e) => String(e.redrives) },
      { label: "Actions", cell: (e) => h("button", { type: "button", class: "action-redrive", onclick: () => redrive(e) }, "Re-drive") },
    ],
  });
  byId("events").append(events.element);

  /** @param {WebhookEvent} e */
  async function redrive(e) {
    const ok = await confirmAction({
      title: "Re-drive this event?",
      message: [`${e.type} (${e.event_id}) is processed by the ${e.service} service again. Processing is idempotent: an effect already applied is not applied twice.`],
      confirmLabel: "Re-drive",
    });
    if (!ok) return;
    try {
      const { event } = await admin.redriveEvent(e.service, e.event_id, newIdempotencyKey());
      notify("Event re-driven", `Status now: ${humanize(event.status)}.`);
      events.refresh();
    } catch (error) {
      onError(error);
    }
  }

  /** @type {import("./components/table.js").PagedTable<AuditRecord>} */
  const audit = pagedTable({
    id: "audit-table", caption: "Audit log, newest first", onError,
    rowKey: (r) => `${r.service}:${r.id}`,
    filters: [
      field({ name: "service", label: "Service", type: "select", options: [{ value: "", label: "All" },
        { value: "credits", label: "Credits" }, { value: "payments", label: "Payments" }, { value: "subscriptions", label: "Subscriptions" }] }),
      field({ name: "actor", label: "Actor", placeholder: "admin:alice", checks: [maxLength(200)] }),
      field({ name: "action", label: "Action", checks: [maxLength(128)] }),
      ...dateFilters(),
    ],
    fetchPage: (filters, token) => admin.auditLog.fetchPage(dayRangeFilters(filters), token, PAGE_SIZE),
    exportCsv: (filters) => csvSaver("audit-log", admin.auditLog)(dayRangeFilters(filters)),
    emptyText: "No records match.",
    columns: [
      { label: "When", cell: (r) => formatDateTime(r.created_at) },
      { label: "Service", cell: (r) => humanize(r.service) },
      { label: "Actor", cell: (r) => r.actor },
      { label: "Action", cell: (r) => r.action },
      { label: "Target", cell: (r) => h("code", {}, r.target) },
      { label: "Request", cell: (r) => (r.request_id ? h("code", {}, r.request_id) : "—") },
      { label: "Detail", cell: (r) => (r.detail === null || r.detail === undefined ? "" : typeof r.detail === "string" ? r.detail : JSON.stringify(r.detail)) },
    ],
  });
  byId("audit").append(audit.element);

  // The dashboard first: a caller who is refused there is no admin, and nothing else is asked for.
  await dashboard.reload();
  if (denied) return;
  await Promise.all([transactions.reload(), subscriptions.reload(), transfers.reload(), events.reload(), audit.reload()]);
}

start();
