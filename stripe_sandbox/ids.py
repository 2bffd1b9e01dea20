"""Object ids shaped like Stripe's: a prefix naming the type and a random tail."""

from __future__ import annotations

import secrets
import string

ALPHABET = string.ascii_letters + string.digits

# Object type -> (prefix, length of the random tail), as Stripe's own ids look.
PREFIXES: dict[str, tuple[str, int]] = {
    "customer": ("cus_", 14),
    "product": ("prod_", 14),
    "price": ("price_", 24),
    "checkout.session": ("cs_test_", 58),
    "item": ("li_", 24),
    "payment_intent": ("pi_", 24),
    "payment_method": ("pm_", 24),
    "charge": ("ch_", 24),
    "refund": ("re_", 24),
    "balance_transaction": ("txn_", 24),
    "event": ("evt_", 24),
    "webhook_endpoint": ("we_", 24),
    "subscription": ("sub_", 24),
    "subscription_item": ("si_", 14),
    "invoice": ("in_", 24),
    "line_item": ("il_", 24),
    "invoiceitem": ("ii_", 24),
    "invoice_payment": ("inpay_", 24),
    "test_helpers.test_clock": ("clock_", 24),
    "billing_portal.session": ("bps_", 24),
    "billing_portal.configuration": ("bpc_", 24),
    "request": ("req_", 14),
}


def random_text(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_id(kind: str) -> str:
    prefix, length = PREFIXES[kind]
    return prefix + random_text(length)


def client_secret(object_id: str) -> str:
    return f"{object_id}_secret_{random_text(25)}"


def webhook_secret() -> str:
    return "whsec_" + random_text(32)


def invoice_prefix() -> str:
    return "".join(secrets.choice("0123456789ABCDEF") for _ in range(8))
