// The user's billing page: balance and ledger, credit packages (Stripe Checkout), plans and the
// subscription manager, the Customer Portal, and the payment history with receipts.

import { adoptTokenFromFragment, claimsOf, currentToken, isExpired } from "./lib/token.js";
import { byId, h, humanize, replaceChildren } from "./lib/dom.js";
import { formatCredits, formatPrice, preferredPrice } from "./lib/money.js";
import { formatDate, formatDateTime, startOfDayUtc } from "./lib/dates.js";
import { futureDay, maxLength } from "./lib/validation.js";
import { newIdempotencyKey } from "./lib/ids.js";
import { useResource } from "./hooks/resource.js";
import { confirmAction, notify, openForm, showProblem } from "./components/modal.js";
import { field } from "./components/form.js";
import { pagedTable } from "./components/table.js";
import { badge } from "./components/badge.js";
import { ApiError } from "./services/http.js";
import { getBalance, getLedger } from "./services/credits.js";
import { createCheckoutSession, getPayment, listPackages, listPayments } from "./services/payments.js";
import {
  cancelSubscription, changeSubscription, listPlans, listSubscriptions, openCustomerPortal, pauseSubscription,
  reactivateSubscription, resumeSubscription,
} from "./services/subscriptions.js";

/** @typedef {import("./types/api.js").Plan} Plan */
/** @typedef {import("./types/api.js").Subscription} Subscription */
/** @typedef {import("./types/api.js").Payment} Payment */
/** @typedef {import("./types/api.js").LedgerEntry} LedgerEntry */

const PENDING_KEY = "billing.pendingCheckout";
const LIVE = new Set(["active", "trialing", "past_due", "unpaid", "incomplete", "paused"]);
const PAUSE_CHOICES = [
  { value: "void", label: "Skip the paused periods' invoices" },
  { value: "keep_as_draft", label: "Keep the invoices as drafts" },
  { value: "mark_uncollectible", label: "Mark the invoices uncollectible" },
];
const PRORATION_CHOICES = [
  { value: "create_prorations", label: "Prorate on the next invoice" },
  { value: "always_invoice", label: "Charge or credit the difference now" },
  { value: "none", label: "No proration: the new price from the next period" },
];

function here() {
  return `${window.location.origin}/billing`;
}

/**
 * One Idempotency-Key per action and request body: a retry of the same thing reuses it.
 * @returns {(body: unknown) => string}
 */
function keyPerBody() {
  /** @type {Map<string, string>} */
  const keys = new Map();
  return (body) => {
    const text = JSON.stringify(body ?? null);
    if (!keys.has(text)) keys.set(text, newIdempotencyKey());
    return /** @type {string} */ (keys.get(text));
  };
}

function start() {
  adoptTokenFromFragment();
  const claims = claimsOf(currentToken());
  if (!claims || isExpired(claims)) {
    replaceChildren(byId("balance"), "—");
    showProblem(new ApiError({
      type: "about:blank", title: "Please sign in again", status: 401, detail: "", reason: "UNAUTHENTICATED",
      request_id: "", errors: [],
    }));
    return;
  }
  const userId = claims.sub;
  replaceChildren(byId("signed-in-as"), "Signed in as ", h("strong", {}, userId));

  // --- balance and ledger ---------------------------------------------------------------
  const balance = useResource(() => getBalance(), { onError: showProblem });
  balance.subscribe((state) => {
    if (state.data) {
      replaceChildren(byId("balance"), formatCredits(state.data.balance));
      const held = state.data.held ? ` ${formatCredits(state.data.held)} more are reserved for work in progress.` : "";
      replaceChildren(byId("balance-updated"),
        (state.data.updated_at ? `Last change ${formatDateTime(state.data.updated_at)}.` : "No movements yet.") + held);
    } else if (state.error) {
      replaceChildren(byId("balance"), "—");
    }
  });
  /** @type {import("./components/table.js").PagedTable<LedgerEntry>} */
  const ledger = pagedTable({
    id: "ledger-table",
    caption: "Credit history, newest first",
    emptyText: "No credit movements yet.",
    onError: showProblem,
    fetchPage: async (_filters, token) => {
      const page = await getLedger({ pageToken: token });
      return { items: page.entries, next_page_token: page.next_page_token };
    },
    columns: [
      { label: "Date", cell: (e) => formatDateTime(e.created_at) },
      { label: "What", cell: (e) => e.description || humanize(e.kind) },
      { label: "Change", className: "num", cell: (e) => (e.amount > 0 ? `+${formatCredits(e.amount)}` : formatCredits(e.amount)) },
      { label: "Balance", className: "num", cell: (e) => formatCredits(e.balance_after) },
    ],
  });
  byId("ledger").append(ledger.element);

  // --- payments ---------------------------------------------------------------------------
  /** @type {import("./components/table.js").PagedTable<Payment>} */
  const payments = pagedTable({
    id: "payments-table",
    caption: "Your payments, newest first",
    emptyText: "No payments yet.",
    onError: showProblem,
    rowKey: (p) => p.id,
    fetchPage: async (_filters, token) => {
      const page = await listPayments({ pageToken: token });
      return { items: page.payments, next_page_token: page.next_page_token };
    },
    columns: [
      { label: "Date", cell: (p) => formatDateTime(p.created_at) },
      { label: "Credits", className: "num", cell: (p) => formatCredits(p.credits) },
      { label: "Amount", className: "num", cell: (p) => formatPrice(p.amount) },
      { label: "Status", cell: (p) => badge(p.status) },
      {
        label: "Receipt",
        cell: (p) => (p.receipt_url
          ? h("a", { href: p.receipt_url, target: "_blank", rel: "noopener noreferrer" }, "Receipt")
          : "—"),
      },
    ],
  });
  byId("payments").append(payments.element);

  function refreshWallet() {
    balance.reload();
    ledger.reload();
    payments.reload();
  }

  // --- buying: Stripe Checkout ------------------------------------------------------------
  /**
   * @param {HTMLElement} button
   * @param {{package_id?: string, plan_id?: string, currency?: string, interval?: string}} what
   */
  async function checkout(button, what) {
    button.setAttribute("disabled", "");
    button.setAttribute("aria-busy", "true");
    try {
      const created = await createCheckoutSession({
        ...what,
        success_url: `${here()}?checkout=success&session_id={CHECKOUT_SESSION_ID}`,
        cancel_url: `${here()}?checkout=cancel`,
      }, newIdempotencyKey());
      sessionStorage.setItem(PENDING_KEY, JSON.stringify({
        payment_id: created.payment_id ?? null, subscription_id: created.subscription_id ?? null,
      }));
      window.location.assign(created.url);
    } catch (error) {
      showProblem(error);
      button.removeAttribute("disabled");
      button.removeAttribute("aria-busy");
    }
  }

  const packages = useResource(() => listPackages(), { onError: showProblem });
  packages.subscribe((state) => {
    if (!state.data) {
      replaceChildren(byId("packages"), h("p", { class: "muted" }, state.loading ? "Loading…" : "Unavailable."));
      return;
    }
    replaceChildren(byId("packages"), state.data.packages.map((pkg) => {
      const price = preferredPrice(pkg.prices);
      const buy = h("button", { type: "button", class: "primary", "data-package": pkg.package_id,
        "aria-label": `Buy ${pkg.name}`,
        onclick: () => checkout(buy, { package_id: pkg.package_id, ...(price ? { currency: price.currency } : {}) }) }, "Buy");
      return h("article", { class: "card", id: `package-${pkg.package_id}` },
        h("h3", {}, pkg.name),
        h("p", { class: "figure small" }, `${formatCredits(pkg.credits)} credits`),
        h("p", {}, price ? formatPrice(price) : "—"),
        buy);
    }));
  });

  // --- plans and subscriptions ------------------------------------------------------------
  const plans = useResource(() => listPlans(), { onError: showProblem });
  const subscriptions = useResource(() => listSubscriptions(userId), { onError: showProblem });

  /** @param {string} planId */
  function planName(planId) {
    return plans.state().data?.plans.find((p) => p.plan_id === planId)?.name ?? planId;
  }

  /** The price shown for a plan, and then asked for at checkout. @param {Plan} plan */
  function planPrice(plan) {
    const monthly = plan.prices.filter((p) => p.interval === "month");
    return preferredPrice(monthly.length ? monthly : plan.prices);
  }

  /** @param {Plan} plan */
  function priceText(plan) {
    const price = planPrice(plan);
    return price ? `${formatPrice(price)} / ${price.interval}` : "—";
  }

  function renderPlans() {
    const data = plans.state().data;
    if (!data) {
      replaceChildren(byId("plans"), h("p", { class: "muted" }, plans.state().loading ? "Loading…" : "Unavailable."));
      return;
    }
    const live = (subscriptions.state().data?.subscriptions ?? []).filter((s) => LIVE.has(s.status));
    replaceChildren(byId("plans"), data.plans.map((plan) => {
      const mine = live.find((s) => s.family === plan.family);
      const action = mine
        ? h("p", { class: "muted" }, mine.plan_id === plan.plan_id ? "Your current plan." : "Change plan from your subscription above.")
        : (() => {
          const button = h("button", { type: "button", class: "primary", "data-plan": plan.plan_id,
            "aria-label": `Subscribe to ${plan.name}`,
            onclick: () => {
              const price = planPrice(plan);
              checkout(button, { plan_id: plan.plan_id, ...(price ? { currency: price.currency, interval: price.interval } : {}) });
            } }, "Subscribe");
          return button;
        })();
      return h("article", { class: "card", id: `plan-${plan.plan_id}` },
        h("h3", {}, plan.name),
        h("p", { class: "figure small" }, priceText(plan)),
        h("p", {}, `${formatCredits(plan.credits_per_period)} credits each period`,
          plan.credits_roll_over ? " (unused credits roll over)" : ""),
        plan.trial_days ? h("p", { class: "muted" }, `${plan.trial_days}-day free trial`) : null,
        action);
    }));
  }

  /** @param {Subscription} sub */
  function stateText(sub) {
    if (sub.pause_collection) {
      return sub.pause_collection.resumes_at
        ? `Payments paused until ${formatDate(sub.pause_collection.resumes_at)}.`
        : "Payments paused until you resume them.";
    }
    if (sub.status === "canceled") return `Canceled ${formatDate(sub.canceled_at ?? sub.ended_at)}.`;
    if (sub.cancel_at_period_end) return `Cancels at the end of the period, on ${formatDate(sub.cancel_at ?? sub.current_period_end)}.`;
    if (sub.status === "trialing") return `Free trial until ${formatDate(sub.trial_end)}.`;
    if (sub.status === "incomplete") return "Waiting for the first payment to be confirmed.";
    if (sub.status === "past_due") return "The last payment failed: update your card in the portal.";
    if (sub.current_period_end) return `Renews on ${formatDate(sub.current_period_end)}.`;
    return "";
  }

  /**
   * Run one change, show the subscription it returns, and read everything again.
   * @param {() => Promise<{subscription: Subscription}>} change
   */
  async function applied(change) {
    const { subscription } = await change();
    const data = subscriptions.state().data;
    if (data) {
      renderSubscriptions({ ...data, subscriptions: data.subscriptions.map((s) => (s.id === subscription.id ? subscription : s)) });
    }
    subscriptions.reload();
    balance.reload();
    return subscription;
  }

  /** @param {Subscription} sub */
  function actionsFor(sub) {
    if (!LIVE.has(sub.status)) return [];
    const name = planName(sub.plan_id);
    /** @type {HTMLElement[]} */
    const buttons = [];
    const alternatives = (plans.state().data?.plans ?? []).filter((p) => p.family === sub.family && p.plan_id !== sub.plan_id);
    if (sub.status !== "incomplete" && alternatives.length && !sub.cancel_at_period_end) {
      buttons.push(h("button", { type: "button", class: "action-change", onclick: () => {
        const plan = field({ name: "plan_id", label: "New plan", type: "select",
          options: alternatives.map((p) => ({ value: p.plan_id, label: `${p.name} (${priceText(p)})` })) });
        const proration = field({ name: "proration_behavior", label: "Price difference", type: "select", options: PRORATION_CHOICES });
        const key = keyPerBody();
        openForm({
          title: `Change ${name}`, fields: [plan, proration], submitLabel: "Change plan",
          submit: (values) => applied(() => changeSubscription(sub.id, values, key(values))),
        });
      } }, "Change plan"));
    }
    if (sub.status !== "incomplete") {
      if (sub.pause_collection) {
        buttons.push(h("button", { type: "button", class: "action-resume", onclick: async () => {
          if (!await confirmAction({ title: `Resume ${name}?`, message: "Payment collection starts again with the next invoice.", confirmLabel: "Resume payments" })) return;
          const key = newIdempotencyKey();
          applied(() => resumeSubscription(sub.id, key)).catch(showProblem);
        } }, "Resume"));
      } else {
        buttons.push(h("button", { type: "button", class: "action-pause", onclick: () => {
          const behavior = field({ name: "behavior", label: "While paused", type: "select", options: PAUSE_CHOICES });
          const resumes = field({ name: "resumes_at", label: "Resume automatically on (optional)", type: "date",
            hint: "Leave empty to pause until you resume.", checks: [futureDay] });
          const key = keyPerBody();
          openForm({
            title: `Pause ${name}`, intro: "Stripe stops collecting payments; your plan stays.",
            fields: [behavior, resumes], submitLabel: "Pause payments",
            submit: (values) => {
              const body = { behavior: /** @type {any} */ (values.behavior),
                ...(values.resumes_at ? { resumes_at: startOfDayUtc(values.resumes_at) } : {}) };
              return applied(() => pauseSubscription(sub.id, body, key(body)));
            },
          });
        } }, "Pause"));
      }
    }
    if (sub.cancel_at_period_end) {
      buttons.push(h("button", { type: "button", class: "action-reactivate", onclick: async () => {
        if (!await confirmAction({ title: `Keep ${name}?`, message: "The cancellation is withdrawn and the subscription renews as usual.", confirmLabel: "Keep subscription" })) return;
        const key = newIdempotencyKey();
        applied(() => reactivateSubscription(sub.id, key)).catch(showProblem);
      } }, "Keep subscription"));
    }
    buttons.push(h("button", { type: "button", class: "action-cancel danger-outline", onclick: () => {
      const when = field({ name: "at_period_end", label: "When", type: "select", options: [
        { value: "true", label: `At the end of the period (${formatDate(sub.current_period_end)})` },
        { value: "false", label: "Now" },
      ] });
      if (sub.cancel_at_period_end) when.input.value = "false";
      const reason = field({ name: "reason", label: "Why are you leaving? (optional)", checks: [maxLength(500)] });
      const key = keyPerBody();
      openForm({
        title: `Cancel ${name}`, fields: [when, reason], submitLabel: "Cancel subscription", danger: true,
        submit: (values) => {
          const body = { at_period_end: values.at_period_end === "true", ...(values.reason ? { reason: values.reason } : {}) };
          return applied(() => cancelSubscription(sub.id, body, key(body)));
        },
      });
    } }, "Cancel"));
    return buttons;
  }

  /** @param {{subscriptions: Subscription[]}|null} data */
  function renderSubscriptions(data) {
    const box = byId("subscriptions");
    if (!data) {
      replaceChildren(box, h("p", { class: "muted" }, subscriptions.state().loading ? "Loading…" : "Unavailable."));
      return;
    }
    const shown = data.subscriptions.filter((s) => LIVE.has(s.status) || s.status === "canceled").slice(0, 10);
    if (!shown.length) {
      replaceChildren(box, h("p", { class: "muted", id: "no-subscriptions" }, "You have no subscription. Choose a plan below."));
      return;
    }
    replaceChildren(box, shown.map((sub) => h("article", { class: "card subscription", id: `subscription-${sub.id}`, "data-plan": sub.plan_id },
      h("div", { class: "card-head" }, h("h3", {}, planName(sub.plan_id)), badge(sub.pause_collection ? "paused" : sub.status)),
      h("p", { class: "sub-state" }, stateText(sub)),
      sub.quantity > 1 ? h("p", {}, `Quantity: ${sub.quantity}`) : null,
      h("div", { class: "actions" }, actionsFor(sub)))));
  }

  plans.subscribe(() => {
    renderPlans();
    renderSubscriptions(subscriptions.state().data);
  });
  subscriptions.subscribe((state) => {
    renderSubscriptions(state.data);
    renderPlans();
  });

  const portal = byId("portal");
  const portalKey = keyPerBody();
  portal.addEventListener("click", async () => {
    portal.setAttribute("disabled", "");
    try {
      const { url } = await openCustomerPortal(here(), portalKey(here()));
      window.location.assign(url);
    } catch (error) {
      showProblem(error);
      portal.removeAttribute("disabled");
    }
  });

  // --- first load, and the return from Checkout --------------------------------------------
  balance.reload();
  ledger.reload();
  payments.reload();
  packages.reload();
  plans.reload();
  subscriptions.reload();

  const params = new URLSearchParams(window.location.search);
  const outcome = params.get("checkout");
  if (outcome) {
    window.history.replaceState(window.history.state, "", window.location.pathname);
    const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? "null");
    sessionStorage.removeItem(PENDING_KEY);
    if (outcome === "cancel") {
      notify("Checkout canceled", "Nothing was charged.");
    } else {
      notify("Thank you", "Your payment was accepted. This page updates as soon as Stripe confirms it, usually within seconds.");
      if (pending?.payment_id) {
        const payment = useResource(() => getPayment(pending.payment_id), { onError: showProblem });
        payment.pollUntil((p) => p.credits_granted || ["failed", "expired", "canceled"].includes(p.status))
          .then(refreshWallet);
      } else if (pending?.subscription_id) {
        subscriptions.pollUntil((data) => data.subscriptions.some((s) => s.id === pending.subscription_id && s.status !== "incomplete"))
          .then(() => {
            refreshWallet();
            // The first period's credits follow the invoice: read the balance once more a moment later.
            balance.pollUntil((b) => b.balance > 0, { timeoutMs: 10_000 });
          });
      }
    }
  }
}

start();
