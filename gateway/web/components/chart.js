// The revenue-per-day chart: an inline SVG of one currency's gross (up) and refunds (down) per day.

import { formatMoney } from "../lib/money.js";
import { formatDate } from "../lib/dates.js";

const SVG = "http://www.w3.org/2000/svg";

/**
 * @param {string} tag
 * @param {Object<string, string|number>} attributes
 * @param {...(SVGElement|string)} children
 */
function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  for (const child of children) element.append(child);
  return element;
}

/** Every date from `since` to `until` inclusive. @param {string} since @param {string} until */
function days(since, until) {
  const out = [];
  const end = Date.parse(`${until}T00:00:00Z`);
  for (let t = Date.parse(`${since}T00:00:00Z`); t <= end && out.length < 400; t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

/**
 * @param {import("../types/api.js").RevenueDay[]} daily
 * @param {string} currency
 * @param {{since: string, until: string}} range
 * @returns {SVGSVGElement}
 */
export function revenueChart(daily, currency, range) {
  const byDate = new Map(daily.filter((d) => d.currency === currency).map((d) => [d.date, d]));
  const dates = days(range.since, range.until);
  const width = 720;
  const height = 260;
  const pad = { left: 64, right: 8, top: 12, bottom: 28 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const maxUp = Math.max(1, ...dates.map((d) => byDate.get(d)?.gross_minor ?? 0));
  const maxDown = Math.max(0, ...dates.map((d) => byDate.get(d)?.refunds_minor ?? 0));
  const scale = plotH / (maxUp + maxDown);
  const zeroY = pad.top + maxUp * scale;
  const slot = plotW / Math.max(1, dates.length);
  const barW = Math.max(1, slot * 0.7);
  const gross = dates.reduce((sum, d) => sum + (byDate.get(d)?.gross_minor ?? 0), 0);
  const refunds = dates.reduce((sum, d) => sum + (byDate.get(d)?.refunds_minor ?? 0), 0);

  const chart = /** @type {SVGSVGElement} */ (svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", id: "revenue-chart",
    "aria-label": `Revenue per day in ${currency.toUpperCase()} from ${range.since} to ${range.until}: ` +
      `gross ${formatMoney(gross, currency)}, refunds ${formatMoney(refunds, currency)}.`,
    preserveAspectRatio: "none",
  }));
  chart.append(
    svg("line", { x1: pad.left, x2: width - pad.right, y1: zeroY, y2: zeroY, class: "axis" }),
    svg("text", { x: pad.left - 6, y: pad.top + 10, class: "tick", "text-anchor": "end" }, formatMoney(maxUp, currency)),
    svg("text", { x: pad.left - 6, y: zeroY + 4, class: "tick", "text-anchor": "end" }, formatMoney(0, currency)),
  );
  if (maxDown > 0) {
    chart.append(svg("text", { x: pad.left - 6, y: height - pad.bottom, class: "tick", "text-anchor": "end" },
      formatMoney(-maxDown, currency)));
  }
  dates.forEach((date, i) => {
    const day = byDate.get(date);
    const x = pad.left + i * slot + (slot - barW) / 2;
    if (day && day.gross_minor > 0) {
      const barH = day.gross_minor * scale;
      chart.append(svg("rect", { x, y: zeroY - barH, width: barW, height: barH, class: "bar gross", "data-date": date },
        svg("title", {}, `${formatDate(date)}: ${formatMoney(day.gross_minor, currency)} gross`)));
    }
    if (day && day.refunds_minor > 0) {
      chart.append(svg("rect", { x, y: zeroY, width: barW, height: day.refunds_minor * scale, class: "bar refunds", "data-date": date },
        svg("title", {}, `${formatDate(date)}: ${formatMoney(day.refunds_minor, currency)} refunded`)));
    }
  });
  const labelEvery = Math.max(1, Math.ceil(dates.length / 6));
  dates.forEach((date, i) => {
    if (i % labelEvery === 0 || i === dates.length - 1) {
      chart.append(svg("text", { x: pad.left + i * slot + slot / 2, y: height - 8, class: "tick", "text-anchor": "middle" },
        date.slice(5)));
    }
  });
  return chart;
}
