// Money is integer minor units plus an ISO 4217 code; it is formatted, never computed with floats.

/** @param {string} currency */
export function minorDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() })
      .resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

/**
 * "$12.50" for (1250, "usd"): the minor units are split by string arithmetic, not divided as a float.
 * @param {number} amountMinor
 * @param {string} currency
 */
export function formatMoney(amountMinor, currency) {
  const digits = minorDigits(currency);
  const negative = amountMinor < 0;
  const text = String(Math.abs(Math.trunc(amountMinor))).padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits) || "0";
  const fraction = digits ? text.slice(text.length - digits) : "";
  const decimal = digits ? `${whole}.${fraction}` : whole;
  try {
    const format = new Intl.NumberFormat(undefined, {
      style: "currency", currency: currency.toUpperCase(), minimumFractionDigits: digits,
    });
    // Intl accepts a decimal string exactly (no binary rounding) in current engines.
    return format.format(/** @type {any} */ ((negative ? "-" : "") + decimal));
  } catch {
    return `${negative ? "-" : ""}${decimal} ${currency.toUpperCase()}`;
  }
}

/** @param {{currency: string, amount_minor: number}} money */
export function formatPrice(money) {
  return formatMoney(money.amount_minor, money.currency);
}

/** @param {number} credits */
export function formatCredits(credits) {
  return new Intl.NumberFormat().format(credits);
}

// The currency shown (and then asked for at checkout) when an item has a price in it: the catalogs'
// default. Whatever is shown is sent as `currency`, so the customer pays what the page showed.
export const PREFERRED_CURRENCY = "usd";

/**
 * @template {{currency: string}} P
 * @param {P[]} prices
 * @returns {P|undefined}
 */
export function preferredPrice(prices) {
  return prices.find((p) => p.currency === PREFERRED_CURRENCY) ?? prices[0];
}
