"""The hosted checkout page: HTML for a Checkout Session, the form a test card pays it with.

Plain HTML and CSS, no script and nothing loaded from elsewhere; every value
shown is escaped. The card fields are posted back to the sandbox, checked for
form, and only the brand and last four digits are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from stripe_sandbox.cards import TEST_CARDS
from stripe_sandbox.money import format_amount

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f6f9fc;color:#1a1f36;margin:0}
main{max-width:28rem;margin:2rem auto;background:#fff;border-radius:8px;padding:1.5rem 2rem;
box-shadow:0 2px 8px rgba(0,0,0,.08)}
h1{font-size:1.25rem;margin:0 0 .25rem} .sandbox{color:#8a6d00;font-size:.8rem;margin:0 0 1rem}
table{width:100%;border-collapse:collapse;margin:1rem 0} td{padding:.35rem 0}
td.amount{text-align:right} tr.total td{border-top:1px solid #e3e8ee;font-weight:600}
label{display:block;font-size:.85rem;margin:.75rem 0 .25rem}
input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #cfd7df;border-radius:4px;font-size:1rem}
.row{display:flex;gap:.75rem} .row>div{flex:1}
button{width:100%;margin-top:1.25rem;padding:.7rem;border:0;border-radius:4px;background:#635bff;color:#fff;
font-size:1rem;font-weight:600;cursor:pointer}
.error{background:#fdecea;color:#9f1c1c;border-radius:4px;padding:.6rem;margin:1rem 0}
.notice{background:#eef6ee;border-radius:4px;padding:.6rem;margin:1rem 0}
details{margin-top:1.25rem;font-size:.85rem;color:#4f566b} code{font-size:.85rem} a{color:#635bff}
""".strip()


def page(title: str, body: str, *, status_line: str = "Stripe sandbox: test mode, no real payment") -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        f'<p class="sandbox">{escape(status_line)}</p>\n{body}\n</main>\n</body>\n</html>\n'
    )


def _lines_table(session: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for line in lines:
        price = line["price"]
        every = ""
        if price.get("recurring"):
            rec = price["recurring"]
            every = (
                f" / {rec['interval']}"
                if rec["interval_count"] == 1
                else f" / {rec['interval_count']} {rec['interval']}s"
            )
        rows.append(
            f"<tr><td>{escape(str(line['description']))} &times; {int(line['quantity'])}</td>"
            f'<td class="amount">{escape(format_amount(int(line["amount_total"]), line["currency"]))}'
            f"{escape(every)}</td></tr>"
        )
    total = format_amount(int(session["amount_total"] or 0), session["currency"] or "usd")
    rows.append(f'<tr class="total"><td>Total</td><td class="amount" id="total">{escape(total)}</td></tr>')
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _test_cards_help() -> str:
    items = "\n".join(
        f"<li><code>{' '.join(card.number[i : i + 4] for i in range(0, len(card.number), 4))}</code>: "
        f"{escape(card.description)}</li>"
        for card in TEST_CARDS
    )
    return (
        '<details open id="test-cards"><summary>Test cards</summary>\n<ul>\n'
        f"{items}\n</ul>\n<p>Any future expiry date and any 3-digit CVC. Any other valid card number is "
        "declined, as in Stripe's test mode.</p>\n</details>"
    )


def checkout(
    session: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]],
    *,
    email: str | None,
    error: str | None = None,
    trial_days: int | None = None,
) -> str:
    total = format_amount(int(session["amount_total"] or 0), session["currency"] or "usd")
    subscription = session["mode"] == "subscription"
    verb = "Start trial" if trial_days else ("Subscribe" if subscription else "Pay")
    button = verb if trial_days else f"{verb} {total}"
    trial = f'<p class="notice">{int(trial_days)}-day free trial: nothing is charged today.</p>' if trial_days else ""
    alert = f'<p class="error" role="alert" id="error">{escape(error)}</p>' if error else ""
    cancel = (
        f'<p><a href="{escape(session["cancel_url"], quote=True)}">Cancel and go back</a></p>'
        if session["cancel_url"]
        else ""
    )
    body = f"""<h1>{"Subscribe" if subscription else "Pay"}</h1>
{_lines_table(session, lines)}
{trial}{alert}
<form method="post" autocomplete="off">
<label for="email">Email</label>
<input id="email" name="email" type="email" required value="{escape(email or "", quote=True)}">
<label for="card_number">Card number</label>
<input id="card_number" name="card_number" inputmode="numeric" placeholder="4242 4242 4242 4242" required>
<div class="row">
<div><label for="card_expiry">Expiry</label>
<input id="card_expiry" name="card_expiry" placeholder="MM / YY" required></div>
<div><label for="card_cvc">CVC</label>
<input id="card_cvc" name="card_cvc" inputmode="numeric" placeholder="123" required></div>
</div>
<label for="cardholder_name">Name on card</label>
<input id="cardholder_name" name="cardholder_name" autocomplete="off">
<button type="submit" id="submit">{escape(button)}</button>
</form>
{cancel}
{_test_cards_help()}"""
    return page(f"{verb} {total}", body)


def closed(session: Mapping[str, Any]) -> str:
    if session["status"] == "complete":
        text = (
            "This payment is complete."
            if session["payment_status"] != "unpaid"
            else "Your payment is processing: it is accepted and will be confirmed shortly."
        )
        link = session["success_url"]
        title = "Payment complete"
    else:
        text, link, title = "This checkout session has expired.", session["cancel_url"], "Session expired"
    back = f'<p><a href="{escape(link, quote=True)}">Continue</a></p>' if link else ""
    return page(title, f'<h1>{escape(title)}</h1>\n<p class="notice" id="status">{escape(text)}</p>\n{back}')


def not_found(what: str) -> str:
    return page("Not found", f"<h1>Not found</h1>\n<p>{escape(what)}</p>")
