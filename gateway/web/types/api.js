// JSDoc typedefs of the REST API's JSON (docs/api.md; the OpenAPI document at /api/openapi.json).
// Nothing runs here: modules import these types with `@typedef {import("../types/api.js").X} X`.

/**
 * @typedef {object} FieldError
 * @property {string} field
 * @property {string} message
 */

/**
 * An application/problem+json body (RFC 9457).
 * @typedef {object} ProblemDetails
 * @property {string} type
 * @property {string} title
 * @property {number} status
 * @property {string} detail
 * @property {string} reason
 * @property {string} request_id
 * @property {FieldError[]} errors
 */

/**
 * @typedef {object} Money
 * @property {string} currency ISO 4217, lower case as Stripe sends it
 * @property {number} amount_minor integer minor units
 */

/**
 * @typedef {object} Balance
 * @property {string} user_id
 * @property {number} balance spendable now
 * @property {number} held reserved by open holds
 * @property {string|null} updated_at
 */

/**
 * @typedef {object} LedgerEntry
 * @property {number} id
 * @property {string} transfer_id
 * @property {"grant"|"spend"|"reversal"|"expiry"} kind
 * @property {number} amount signed change to the wallet
 * @property {number} balance_after
 * @property {string} reference
 * @property {string} description
 * @property {string} created_at
 */

/**
 * @typedef {object} LedgerPage
 * @property {string} user_id
 * @property {LedgerEntry[]} entries
 * @property {string|null} next_page_token
 */

/**
 * @typedef {object} CreditPackage
 * @property {string} package_id
 * @property {string} name
 * @property {number} credits
 * @property {Money[]} prices
 */

/**
 * @typedef {object} CheckoutSessionCreated
 * @property {string} [payment_id] for a credit package
 * @property {string} [subscription_id] for a plan
 * @property {string} checkout_session_id
 * @property {string} url Stripe's hosted checkout page
 */

/**
 * @typedef {"pending"|"processing"|"succeeded"|"failed"|"expired"|"canceled"|"partially_refunded"|"refunded"} PaymentStatus
 */

/**
 * @typedef {object} Payment
 * @property {string} id
 * @property {string} user_id
 * @property {string} package_id
 * @property {number} credits
 * @property {Money} amount
 * @property {Money} amount_refunded
 * @property {PaymentStatus} status
 * @property {"checkout"|"payment_intent"} flow
 * @property {string|null} receipt_url
 * @property {boolean} credits_granted
 * @property {number} credits_reversed
 * @property {number} credit_shortfall
 * @property {string} created_at
 * @property {string} updated_at
 */

/**
 * @typedef {object} PlanPrice
 * @property {string} currency
 * @property {number} amount_minor
 * @property {"month"|"year"} interval
 */

/**
 * @typedef {object} Plan
 * @property {string} plan_id
 * @property {string} name
 * @property {string} family
 * @property {number} credits_per_period
 * @property {number} trial_days
 * @property {number} trial_credits
 * @property {boolean} credits_roll_over
 * @property {PlanPrice[]} prices
 */

/**
 * @typedef {"incomplete"|"incomplete_expired"|"trialing"|"active"|"past_due"|"canceled"|"unpaid"|"paused"} SubscriptionStatus
 * @typedef {"void"|"keep_as_draft"|"mark_uncollectible"} PauseBehavior
 * @typedef {"create_prorations"|"none"|"always_invoice"} ProrationBehavior
 */

/**
 * @typedef {object} Subscription
 * @property {string} id
 * @property {string} user_id
 * @property {string} plan_id
 * @property {string} family
 * @property {number} quantity
 * @property {SubscriptionStatus} status
 * @property {string} currency
 * @property {string} interval
 * @property {string|null} stripe_subscription_id
 * @property {string|null} current_period_start
 * @property {string|null} current_period_end
 * @property {string|null} trial_end
 * @property {boolean} cancel_at_period_end
 * @property {string|null} cancel_at
 * @property {string|null} canceled_at
 * @property {string|null} ended_at
 * @property {string|null} cancellation_reason
 * @property {{behavior: PauseBehavior, resumes_at: string|null}|null} pause_collection
 * @property {number} periods_granted
 * @property {string} created_at
 * @property {string} updated_at
 */

/**
 * One page of any list: the items under their own key, and the token of the next page.
 * @template T
 * @typedef {{items: T[], next_page_token: string|null}} Page
 */

/**
 * @typedef {object} RevenueTotal
 * @property {string} currency
 * @property {number} gross_minor
 * @property {number} refunds_minor
 * @property {number} net_minor
 * @property {number} payments
 * @property {number} refund_count
 */

/**
 * @typedef {object} RevenueDay
 * @property {string} date YYYY-MM-DD
 * @property {string} currency
 * @property {number} gross_minor
 * @property {number} refunds_minor
 */

/**
 * @typedef {object} FinancialDashboard
 * @property {{since: string, until: string}} range
 * @property {{totals: RevenueTotal[], daily: RevenueDay[]}|null} revenue
 * @property {{recurring: {currency: string, mrr_minor: number, arr_minor: number}[],
 *             by_status: Object<string, number>, new: number, churned: number,
 *             invoice_revenue: {currency: string, paid_minor: number, invoices: number}[],
 *             daily_invoice_revenue: {date: string, currency: string, paid_minor: number}[]}|null} subscriptions
 * @property {{granted: number, spent: number, reversed: number, expired: number, outstanding: number,
 *             granted_by_source: Object<string, number>}|null} credits
 * @property {{categories: {category: string, credits: number, held: number, value: Money[]}[],
 *             breakage: {month: string, category: string, credits: number, value: Money[]}[],
 *             deferred_revenue: Money[]}|null} liability
 * @property {string[]} missing the parts that could not be computed (a service was unavailable)
 */

/**
 * @typedef {object} AdminTransaction
 * @property {string} id
 * @property {"payment"|"refund"} kind
 * @property {string} user_id
 * @property {string} payment_id
 * @property {Money} amount
 * @property {string} status
 * @property {string} created_at
 * @property {string|null} actor
 * @property {string|null} receipt_url
 */

/**
 * @typedef {object} AdminTransfer
 * @property {string} id
 * @property {"grant"|"spend"|"reversal"} kind
 * @property {number} amount
 * @property {string} user_id
 * @property {string|null} source
 * @property {string} reference
 * @property {string} description
 * @property {string} actor
 * @property {string} created_at
 * @property {number} reversed_amount
 */

/**
 * @typedef {object} WebhookEvent
 * @property {"payments"|"subscriptions"} service
 * @property {string} event_id
 * @property {string} type
 * @property {string} status
 * @property {string|null} detail
 * @property {string} received_at
 * @property {number} redrives
 */

/**
 * @typedef {object} AuditRecord
 * @property {string} service
 * @property {string} id
 * @property {string} actor
 * @property {string} action
 * @property {string} target
 * @property {string|null} request_id
 * @property {string|Object|null} detail
 * @property {string} created_at
 */

/**
 * The claims of the bearer token the page reads (for display and for paths; the server checks them).
 * @typedef {object} TokenClaims
 * @property {string} sub the user id
 * @property {string[]} roles
 * @property {number} exp
 */

export {};
