"""Test cards: what a card number (or one of Stripe's test payment method ids) does to a payment.

Only the brand and the last four digits of a card are ever kept; the number,
expiry and CVC entered on the hosted page are checked for form and dropped.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Behaviour(enum.Enum):
    SUCCEED = "succeed"
    DECLINE = "decline"
    # The payment is accepted but settles later (like a bank debit): first `processing`,
    # then succeeded or failed after STRIPE_SANDBOX_ASYNC_DELAY_SECONDS or when told.
    DELAYED_SUCCESS = "delayed_success"
    DELAYED_FAILURE = "delayed_failure"
    # Attaching the card to a customer succeeds (nothing is charged), but every charge is declined.
    DECLINE_CHARGES = "decline_charges"

    @property
    def delayed(self) -> bool:
        return self in (Behaviour.DELAYED_SUCCESS, Behaviour.DELAYED_FAILURE)


@dataclass(frozen=True)
class Card:
    """What the sandbox keeps of a card, and what paying with it does."""

    brand: str
    last4: str
    behaviour: Behaviour
    decline_code: str | None = None
    message: str | None = None
    funding: str = "credit"
    country: str = "US"


DECLINED = "Your card was declined."


@dataclass(frozen=True)
class TestCard:
    number: str
    behaviour: Behaviour
    description: str
    decline_code: str | None = None
    message: str | None = None


TEST_CARDS: tuple[TestCard, ...] = (
    TestCard("4242424242424242", Behaviour.SUCCEED, "Visa: the payment succeeds."),
    TestCard("5555555555554444", Behaviour.SUCCEED, "Mastercard: the payment succeeds."),
    TestCard("4000000000000002", Behaviour.DECLINE, "Declined (generic_decline).", "generic_decline", DECLINED),
    TestCard(
        "4000000000009995",
        Behaviour.DECLINE,
        "Declined (insufficient_funds).",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    TestCard(
        "4000000000000341",
        Behaviour.DECLINE_CHARGES,
        "Attaching it to a customer (or a trial) succeeds; every charge is declined (generic_decline).",
        "generic_decline",
        DECLINED,
    ),
    TestCard(
        "4000000000001125",
        Behaviour.DELAYED_SUCCESS,
        "Sandbox only: accepted, processing, then succeeds after the async delay.",
    ),
    TestCard(
        "4000000000002222",
        Behaviour.DELAYED_FAILURE,
        "Sandbox only: accepted, processing, then fails after the async delay.",
        "generic_decline",
        DECLINED,
    ),
)

# Stripe's test payment method ids, usable with POST /v1/payment_intents/{id}/confirm.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeCustomerFail": "4000000000000341",
}

LIVE_CARD_MESSAGE = "Your card was declined. Your request was in test mode, but used a non test card."


class CardInvalid(ValueError):
    """The card details are not well formed; `code` is Stripe's (incorrect_number, invalid_expiry_year, ...)."""

    def __init__(self, message: str, code: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


def digits(number: str) -> str:
    return re.sub(r"[\s-]", "", number)


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def brand_of(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    if number.startswith(("6011", "65")):
        return "discover"
    return "unknown"


def card_for_number(number: str) -> Card:
    """The behaviour of a well-formed card number; any card that is not a test card is declined, as in test mode."""
    number = digits(number)
    if not luhn_valid(number):
        raise CardInvalid("Your card number is incorrect.", "incorrect_number", "number")
    brand, last4 = brand_of(number), number[-4:]
    for test in TEST_CARDS:
        if test.number == number:
            return Card(brand, last4, test.behaviour, test.decline_code, test.message)
    return Card(brand, last4, Behaviour.DECLINE, "test_mode_live_card", LIVE_CARD_MESSAGE)


def card_for_payment_method(payment_method: str) -> Card | None:
    number = TEST_PAYMENT_METHODS.get(payment_method)
    return None if number is None else card_for_number(number)


def check_expiry(month_text: str, year_text: str, *, today_year: int, today_month: int) -> None:
    if not month_text.isdigit() or not 1 <= int(month_text) <= 12:
        raise CardInvalid("Your card's expiration month is invalid.", "invalid_expiry_month", "exp_month")
    if not year_text.isdigit() or len(year_text) not in (2, 4):
        raise CardInvalid("Your card's expiration year is invalid.", "invalid_expiry_year", "exp_year")
    year = int(year_text) + (2000 if len(year_text) == 2 else 0)
    if (year, int(month_text)) < (today_year, today_month):
        raise CardInvalid("Your card's expiration date is in the past.", "invalid_expiry_year", "exp_year")


def check_cvc(cvc: str) -> None:
    if not cvc.isdigit() or len(cvc) not in (3, 4):
        raise CardInvalid("Your card's security code is invalid.", "invalid_cvc", "cvc")


def parse_expiry(text: str) -> tuple[str, str]:
    """`MM / YY`, `MM/YYYY`, `MMYY` -> (month, year)."""
    compact = re.sub(r"\s", "", text)
    if "/" in compact:
        month, _, year = compact.partition("/")
        return month, year
    if len(compact) in (4, 6):
        return compact[:2], compact[2:]
    raise CardInvalid("Your card's expiration date is incomplete.", "incomplete_expiry", "exp_month")
