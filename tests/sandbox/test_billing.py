"""Subscriptions on test clocks: renewals, trials, paused collection, prorations, failed payments and retries,
cancellation at period end, incomplete subscriptions; through the real stripe library, as a billing service would."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import stripe

from tests.sandbox.conftest import unique
from tests.support.stripe_sandbox import SandboxProcess, wait_until

DAY = 86400
HOUR = 3600
T0 = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp())
FEB1 = T0 + 31 * DAY
MAR1 = FEB1 + 28 * DAY
APR1 = MAR1 + 31 * DAY
MAY1 = APR1 + 30 * DAY


def price(client: stripe.StripeClient, amount: int = 2000, name: str = "Team plan") -> Any:
    return client.v1.prices.create(
        params={
            "unit_amount": amount,
            "currency": "usd",
            "product_data": {"name": name},
            "recurring": {"interval": "month"},
        }
    )


def on_clock(client: stripe.StripeClient, card: str | None = "pm_card_visa") -> tuple[Any, Any]:
    """A clock at T0 and a customer on it, with `card` attached as its default payment method."""
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "name": unique("clock")})
    params: dict[str, Any] = {"test_clock": clock.id, "email": f"{unique('c')}@example.com"}
    if card is not None:
        params.update({"payment_method": card, "invoice_settings": {"default_payment_method": card}})
    return clock, client.v1.customers.create(params=params)


def advance(client: stripe.StripeClient, clock: Any, to: int) -> Any:
    """Advance and wait until `ready`, as a client of Stripe must."""
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": to})
    return wait_until(
        lambda: (c := client.v1.test_helpers.test_clocks.retrieve(clock.id)).status == "ready" and c,
        what="the test clock to be ready",
    )


def subscribe(client: stripe.StripeClient, customer: Any, price_id: str, **extra: Any) -> Any:
    return client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price_id}], **extra})


def events_of(client: stripe.StripeClient, customer_id: str) -> list[Any]:
    """Every event about this customer's objects, oldest first."""
    found = []
    for event in client.v1.events.list(params={"limit": 100}).auto_paging_iter():
        obj = event.data.object.to_dict()
        if customer_id in (obj.get("customer"), obj.get("id")):
            found.append(event)
    return list(reversed(found))


def invoices_of(client: stripe.StripeClient, subscription_id: str) -> list[Any]:
    """Oldest first."""
    return list(reversed(client.v1.invoices.list(params={"subscription": subscription_id, "limit": 100}).data))


def intents_of(client: stripe.StripeClient, customer_id: str) -> list[Any]:
    return client.v1.payment_intents.list(params={"customer": customer_id, "limit": 100}).data


RENEWAL = [
    "customer.subscription.updated",
    "invoice.created",
    "invoice.finalized",
    "payment_intent.created",
    "payment_intent.succeeded",
    "charge.succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
]


class TestClocks:
    def test_create_retrieve_list_delete(self, client: stripe.StripeClient) -> None:
        clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "name": "billing"})
        assert clock.id.startswith("clock_")
        assert (clock.object, clock.status, clock.frozen_time, clock.name) == (
            "test_helpers.test_clock",
            "ready",
            T0,
            "billing",
        )
        assert clock.deletes_after > clock.created
        assert client.v1.test_helpers.test_clocks.retrieve(clock.id).frozen_time == T0
        assert clock.id in [c.id for c in client.v1.test_helpers.test_clocks.list(params={"limit": 100}).data]
        customer = client.v1.customers.create(params={"test_clock": clock.id})
        assert (customer.test_clock, customer.created) == (clock.id, T0)
        deleted = client.v1.test_helpers.test_clocks.delete(clock.id)
        assert deleted.deleted is True
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.test_helpers.test_clocks.retrieve(clock.id)
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.customers.retrieve(customer.id)

    def test_advance_is_announced_and_never_goes_back(self, client: stripe.StripeClient) -> None:
        clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0})
        ready = advance(client, clock, T0 + DAY)
        assert (ready.status, ready.frozen_time) == ("ready", T0 + DAY)
        types = [
            e.type
            for e in client.v1.events.list(params={"type": "test_helpers.test_clock.*", "limit": 10}).data
            if e.data.object.id == clock.id
        ]
        assert types[:2] == ["test_helpers.test_clock.ready", "test_helpers.test_clock.advancing"]
        for target in (T0, T0 + DAY):
            with pytest.raises(stripe.InvalidRequestError) as caught:
                client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": target})
            assert caught.value.param == "frozen_time"
        assert client.v1.test_helpers.test_clocks.retrieve(clock.id).frozen_time == T0 + DAY

    def test_without_a_clock_nothing_renews(self, client: stripe.StripeClient) -> None:
        customer = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
        method = client.v1.payment_methods.list(params={"customer": customer.id}).data[0]
        subscription = subscribe(client, customer, price(client).id, default_payment_method=method.id)
        assert subscription.status == "active"
        assert subscription.test_clock is None
        assert abs(subscription.created - subscription["items"].data[0].current_period_start) == 0


class TestRenewals:
    def test_three_periods_make_four_paid_invoices(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client)
        subscription = subscribe(client, customer, price(client, 2000).id)
        assert (subscription.status, subscription.created, subscription.test_clock) == ("active", T0, clock.id)
        item = subscription["items"].data[0]
        assert (item.current_period_start, item.current_period_end) == (T0, FEB1)

        advance(client, clock, APR1 + HOUR)

        invoices = invoices_of(client, subscription.id)
        assert [i.billing_reason for i in invoices] == ["subscription_create"] + ["subscription_cycle"] * 3
        assert [i.status for i in invoices] == ["paid"] * 4
        assert [i.amount_paid for i in invoices] == [2000] * 4
        periods = [(i.lines.data[0].period.start, i.lines.data[0].period.end) for i in invoices]
        assert periods == [(T0, FEB1), (FEB1, MAR1), (MAR1, APR1), (APR1, MAY1)]
        assert [i.created for i in invoices] == [T0, FEB1, MAR1, APR1]
        numbers = [i.number for i in invoices]
        assert numbers == [f"{customer.invoice_prefix}-{n:04d}" for n in (1, 2, 3, 4)]
        assert all(i.parent.subscription_details.subscription == subscription.id for i in invoices)
        renewed = client.v1.subscriptions.retrieve(subscription.id)
        item = renewed["items"].data[0]
        assert (renewed.status, item.current_period_start, item.current_period_end) == ("active", APR1, MAY1)
        assert renewed.latest_invoice == invoices[-1].id
        assert len(intents_of(client, customer.id)) == 4

        events = events_of(client, customer.id)
        after_create = [e for e in events if e.created > T0]
        expected = []
        for _ in range(3):
            expected += ["invoice.upcoming", *RENEWAL]
        assert [e.type for e in after_create] == expected
        assert [e.created for e in after_create if e.type == "invoice.upcoming"] == [
            FEB1 - 7 * DAY,
            MAR1 - 7 * DAY,
            APR1 - 7 * DAY,
        ]
        upcoming = next(e for e in after_create if e.type == "invoice.upcoming").data.object
        assert (upcoming.id, upcoming.amount_due, upcoming.lines.data[0].period.start) == (None, 2000, FEB1)
        update = next(e for e in after_create if e.type == "customer.subscription.updated")
        assert update.created == FEB1
        previous = update.data.previous_attributes.to_dict()
        assert previous["items"]["data"][0]["current_period_end"] == FEB1
        paid = [e for e in after_create if e.type == "invoice.paid"]
        assert [e.created for e in paid] == [FEB1, MAR1, APR1]
        charge = client.v1.charges.retrieve(intents_of(client, customer.id)[0].latest_charge)
        assert (charge.created, charge.amount, charge.metadata.to_dict()) == (APR1, 2000, {})

    def test_trial_ends_into_a_paid_invoice(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client)
        subscription = subscribe(client, customer, price(client, 1500).id, trial_period_days=14)
        assert (subscription.status, subscription.trial_end) == ("trialing", T0 + 14 * DAY)
        first = invoices_of(client, subscription.id)[0]
        assert (first.amount_due, first.status) == (0, "paid")

        advance(client, clock, T0 + 15 * DAY)

        ended = client.v1.subscriptions.retrieve(subscription.id)
        assert ended.status == "active"
        item = ended["items"].data[0]
        assert (item.current_period_start, item.current_period_end) == (T0 + 14 * DAY, T0 + 14 * DAY + 31 * DAY)
        invoices = invoices_of(client, subscription.id)
        assert [(i.billing_reason, i.status, i.amount_paid) for i in invoices] == [
            ("subscription_create", "paid", 0),
            ("subscription_cycle", "paid", 1500),
        ]
        events = [e for e in events_of(client, customer.id) if e.created > T0]
        types = [e.type for e in events]
        assert types == ["invoice.upcoming", "customer.subscription.trial_will_end", *RENEWAL]
        will_end = events[1]
        assert will_end.created == T0 + 11 * DAY
        assert events[2].data.previous_attributes.to_dict()["status"] == "trialing"

    def test_trial_without_a_payment_method_pauses_then_resumes(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client, card=None)
        subscription = subscribe(
            client,
            customer,
            price(client, 1500).id,
            trial_period_days=7,
            trial_settings={"end_behavior": {"missing_payment_method": "pause"}},
            payment_behavior="default_incomplete",
        )
        assert subscription.trial_settings.end_behavior.missing_payment_method == "pause"
        advance(client, clock, T0 + 8 * DAY)
        paused = client.v1.subscriptions.retrieve(subscription.id)
        assert paused.status == "paused"
        types = [e.type for e in events_of(client, customer.id) if e.created > T0]
        assert types[-2:] == ["customer.subscription.updated", "customer.subscription.paused"]
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.subscriptions.resume(
                subscribe(client, customer, price(client).id, payment_behavior="default_incomplete").id
            )
        method = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
        client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": method.id}})
        resumed = client.v1.subscriptions.resume(subscription.id, params={"billing_cycle_anchor": "now"})
        assert resumed.status == "active"
        latest = client.v1.invoices.retrieve(resumed.latest_invoice)
        assert (latest.status, latest.amount_paid) == ("paid", 1500)
        assert "customer.subscription.resumed" in [e.type for e in events_of(client, customer.id)]


class TestPauseCollection:
    def test_void_then_resumes(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client)
        subscription = subscribe(client, customer, price(client).id)
        resumes = FEB1 + 10 * DAY
        paused = client.v1.subscriptions.update(
            subscription.id, params={"pause_collection": {"behavior": "void", "resumes_at": resumes}}
        )
        assert paused.pause_collection.to_dict() == {"behavior": "void", "resumes_at": resumes}
        advance(client, clock, FEB1 + HOUR)
        renewal = invoices_of(client, subscription.id)[-1]
        assert (renewal.billing_reason, renewal.status, renewal.amount_paid) == ("subscription_cycle", "void", 0)
        assert renewal.status_transitions.voided_at == FEB1
        assert len(intents_of(client, customer.id)) == 1
        after = client.v1.subscriptions.retrieve(subscription.id)
        assert (after.status, after["items"].data[0].current_period_start) == ("active", FEB1)

        advance(client, clock, MAR1 + HOUR)
        resumed = client.v1.subscriptions.retrieve(subscription.id)
        assert resumed.pause_collection is None
        invoices = invoices_of(client, subscription.id)
        assert [i.status for i in invoices] == ["paid", "void", "paid"]
        events = [e for e in events_of(client, customer.id) if e.created > T0]
        clear = next(e for e in events if e.created == resumes)
        assert clear.type == "customer.subscription.updated"
        assert clear.data.previous_attributes.to_dict()["pause_collection"]["behavior"] == "void"
        feb = [e.type for e in events if e.created == FEB1]
        assert feb == ["customer.subscription.updated", "invoice.created", "invoice.voided"]

    @pytest.mark.parametrize(
        ("behavior", "status", "types"),
        [
            ("keep_as_draft", "draft", ["customer.subscription.updated", "invoice.created"]),
            (
                "mark_uncollectible",
                "uncollectible",
                [
                    "customer.subscription.updated",
                    "invoice.created",
                    "invoice.finalized",
                    "invoice.marked_uncollectible",
                ],
            ),
        ],
    )
    def test_other_behaviours(self, client: stripe.StripeClient, behavior: str, status: str, types: list[str]) -> None:
        clock, customer = on_clock(client)
        subscription = subscribe(client, customer, price(client).id)
        client.v1.subscriptions.update(subscription.id, params={"pause_collection": {"behavior": behavior}})
        advance(client, clock, FEB1 + HOUR)
        renewal = invoices_of(client, subscription.id)[-1]
        assert (renewal.status, renewal.amount_paid) == (status, 0)
        assert len(intents_of(client, customer.id)) == 1
        assert [e.type for e in events_of(client, customer.id) if e.created == FEB1] == types
        assert client.v1.invoices.list(params={"subscription": subscription.id, "status": status}).data[0].id == (
            renewal.id
        )
        cleared = client.v1.subscriptions.update(subscription.id, params={"pause_collection": ""})
        assert cleared.pause_collection is None
        if status == "draft":
            finalized = client.v1.invoices.finalize_invoice(renewal.id)
            assert finalized.status == "open"
        paid = client.v1.invoices.pay(renewal.id)
        assert (paid.status, paid.amount_paid) == ("paid", 2000)


class TestProrations:
    def test_create_prorations_go_on_the_next_renewal(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client)
        basic, pro = price(client, 1000, "Basic"), price(client, 3000, "Pro")
        subscription = subscribe(client, customer, basic.id)
        advance(client, clock, T0 + 10 * DAY)
        when = T0 + 10 * DAY + 5 * HOUR
        item = subscription["items"].data[0]
        updated = client.v1.subscriptions.update(
            subscription.id, params={"items": [{"id": item.id, "price": pro.id}], "proration_date": when}
        )
        assert updated["items"].data[0].id == item.id
        assert updated["items"].data[0].price.id == pro.id
        pending = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data
        unused = FEB1 - when
        credit = -round(1000 * unused / (FEB1 - T0))
        charge = round(3000 * unused / (FEB1 - T0))
        assert sorted(i.amount for i in pending) == [credit, charge]
        assert all(i.proration and i.invoice is None and i.object == "invoiceitem" for i in pending)
        assert all((i.period.start, i.period.end) == (when, FEB1) for i in pending)
        assert client.v1.invoice_items.retrieve(pending[0].id).id == pending[0].id
        assert len(invoices_of(client, subscription.id)) == 1

        advance(client, clock, FEB1 + HOUR)
        renewal = invoices_of(client, subscription.id)[-1]
        assert renewal.amount_paid == 3000 + credit + charge
        lines = client.v1.invoices.line_items.list(renewal.id).data
        assert sorted(line.amount for line in lines) == sorted([3000, credit, charge])
        assert client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data == []
        taken = client.v1.invoice_items.list(params={"invoice": renewal.id}).data
        assert len(taken) == 2

    def test_always_invoice_charges_now(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client)
        basic, pro = price(client, 1000, "Basic"), price(client, 3000, "Pro")
        subscription = subscribe(client, customer, basic.id)
        advance(client, clock, T0 + 10 * DAY)
        item = subscription["items"].data[0]
        updated = client.v1.subscriptions.update(
            subscription.id,
            params={"items": [{"id": item.id, "price": pro.id}], "proration_behavior": "always_invoice"},
        )
        fraction = (FEB1 - (T0 + 10 * DAY)) / (FEB1 - T0)
        expected = round(3000 * fraction) - round(1000 * fraction)
        invoice = client.v1.invoices.retrieve(updated.latest_invoice)
        assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == (
            "subscription_update",
            "paid",
            expected,
        )
        assert invoice.created == T0 + 10 * DAY
        assert client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data == []
        types = [e.type for e in events_of(client, customer.id) if e.created == T0 + 10 * DAY]
        assert types == [
            "invoiceitem.created",
            "invoiceitem.created",
            "customer.subscription.updated",
            "invoice.created",
            "invoice.finalized",
            "payment_intent.created",
            "payment_intent.succeeded",
            "charge.succeeded",
            "invoice.paid",
            "invoice.payment_succeeded",
        ]

    def test_none_and_quantity(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client)
        basic = price(client, 1000, "Basic")
        subscription = subscribe(client, customer, basic.id)
        advance(client, clock, T0 + 10 * DAY)
        item = subscription["items"].data[0]
        updated = client.v1.subscriptions.update(
            subscription.id, params={"items": [{"id": item.id, "quantity": 3}], "proration_behavior": "none"}
        )
        assert updated["items"].data[0].quantity == 3
        assert client.v1.invoice_items.list(params={"customer": customer.id}).data == []
        advance(client, clock, FEB1 + HOUR)
        assert invoices_of(client, subscription.id)[-1].amount_paid == 3000


class TestCancellation:
    def test_cancel_at_period_end(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client)
        subscription = subscribe(client, customer, price(client).id)
        advance(client, clock, T0 + 5 * DAY)
        scheduled = client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
        assert (scheduled.cancel_at_period_end, scheduled.cancel_at, scheduled.status) == (True, FEB1, "active")
        advance(client, clock, FEB1 - HOUR)
        assert client.v1.subscriptions.retrieve(subscription.id).status == "active"
        advance(client, clock, MAR1 + DAY)
        ended = client.v1.subscriptions.retrieve(subscription.id)
        assert (ended.status, ended.ended_at, ended.canceled_at) == ("canceled", FEB1, T0 + 5 * DAY)
        assert len(invoices_of(client, subscription.id)) == 1
        types = [e.type for e in events_of(client, customer.id) if e.created > T0]
        assert types == ["customer.subscription.updated", "customer.subscription.deleted"]
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.subscriptions.update(subscription.id, params={"description": "again"})
        assert "canceled subscription can only update its cancellation_details and metadata" in str(caught.value)
        assert client.v1.subscriptions.update(subscription.id, params={"metadata": {"a": "b"}}).metadata.a == "b"


class TestFailedPayments:
    def test_declined_renewal_then_paid_with_another_card(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client)
        subscription = subscribe(client, customer, price(client).id)
        failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer.id})
        assert (failing.id.startswith("pm_"), failing.customer, failing.card.last4) == (True, customer.id, "0341")
        client.v1.subscriptions.update(subscription.id, params={"default_payment_method": failing.id})

        advance(client, clock, FEB1 + HOUR)
        overdue = client.v1.subscriptions.retrieve(subscription.id)
        assert overdue.status == "past_due"
        invoice = client.v1.invoices.retrieve(overdue.latest_invoice)
        assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == ("open", 1, FEB1 + 3 * DAY)
        feb = [e.type for e in events_of(client, customer.id) if e.created == FEB1]
        assert feb == [
            "customer.subscription.updated",
            "invoice.created",
            "invoice.finalized",
            "payment_intent.created",
            "payment_intent.payment_failed",
            "charge.failed",
            "invoice.payment_failed",
            "customer.subscription.updated",
        ]

        with pytest.raises(stripe.CardError):
            client.v1.invoices.pay(invoice.id)
        good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
        paid = client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
        assert (paid.status, paid.amount_paid, paid.attempt_count, paid.next_payment_attempt) == ("paid", 2000, 3, None)
        assert client.v1.subscriptions.retrieve(subscription.id).status == "active"
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.invoices.pay(invoice.id)

    def test_retries_end_in_unpaid(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client, card="pm_card_chargeCustomerFail")
        subscription = subscribe(client, customer, price(client).id, trial_period_days=31)
        assert subscription.status == "trialing"
        advance(client, clock, FEB1 + 10 * DAY)
        unpaid = client.v1.subscriptions.retrieve(subscription.id)
        assert unpaid.status == "unpaid"
        invoice = client.v1.invoices.retrieve(unpaid.latest_invoice)
        assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == ("open", 4, None)
        events = events_of(client, customer.id)
        failures = [e.created for e in events if e.type == "invoice.payment_failed"]
        assert failures == [FEB1, FEB1 + 3 * DAY, FEB1 + 5 * DAY, FEB1 + 7 * DAY]
        statuses = [
            e.data.object.status for e in events if e.type == "customer.subscription.updated" and e.created >= FEB1
        ]
        assert statuses == ["active", "past_due", "unpaid"]

    def test_pm_card_charge_declined_cannot_be_attached(self, client: stripe.StripeClient) -> None:
        customer = client.v1.customers.create()
        with pytest.raises(stripe.CardError):
            client.v1.payment_methods.attach("pm_card_chargeDeclined", params={"customer": customer.id})
        method = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer.id})
        detached = client.v1.payment_methods.detach(method.id)
        assert detached.customer is None


class TestIncomplete:
    def test_default_incomplete_then_confirm(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client, card=None)
        subscription = subscribe(
            client,
            customer,
            price(client, 2500).id,
            payment_behavior="default_incomplete",
            payment_settings={"save_default_payment_method": "on_subscription"},
            expand=["latest_invoice.confirmation_secret", "latest_invoice.payments"],
        )
        assert subscription.status == "incomplete"
        invoice = subscription.latest_invoice
        assert (invoice.status, invoice.amount_due) == ("open", 2500)
        secret = invoice.confirmation_secret
        assert secret.type == "payment_intent"
        intent_id = secret.client_secret.split("_secret_")[0]
        assert invoice.payments.data[0].payment.payment_intent == intent_id
        intent = client.v1.payment_intents.retrieve(intent_id)
        assert (intent.status, intent.client_secret, intent.amount) == (
            "requires_payment_method",
            secret.client_secret,
            2500,
        )

        confirmed = client.v1.payment_intents.confirm(intent_id, params={"payment_method": "pm_card_visa"})
        assert confirmed.status == "succeeded"
        active = client.v1.subscriptions.retrieve(subscription.id)
        assert active.status == "active"
        assert active.default_payment_method == confirmed.payment_method
        assert client.v1.invoices.retrieve(invoice.id).status == "paid"
        advance(client, clock, FEB1 + HOUR)
        assert invoices_of(client, subscription.id)[-1].status == "paid"

    def test_unpaid_for_23_hours_expires(self, client: stripe.StripeClient) -> None:
        clock, customer = on_clock(client, card=None)
        subscription = subscribe(client, customer, price(client).id, payment_behavior="default_incomplete")
        advance(client, clock, T0 + 22 * HOUR)
        assert client.v1.subscriptions.retrieve(subscription.id).status == "incomplete"
        advance(client, clock, T0 + 24 * HOUR)
        expired = client.v1.subscriptions.retrieve(subscription.id)
        assert (expired.status, expired.ended_at) == ("incomplete_expired", T0 + 23 * HOUR)
        assert client.v1.invoices.retrieve(expired.latest_invoice).status == "void"
        types = [e.type for e in events_of(client, customer.id) if e.created == T0 + 23 * HOUR]
        assert types == ["customer.subscription.updated", "payment_intent.canceled", "invoice.voided"]

    def test_charged_at_once_or_refused(self, client: stripe.StripeClient) -> None:
        _, customer = on_clock(client, card="pm_card_chargeCustomerFail")
        plan = price(client).id
        with pytest.raises(stripe.CardError):
            subscribe(client, customer, plan, payment_behavior="error_if_incomplete")
        assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []
        allowed = subscribe(client, customer, plan, payment_behavior="allow_incomplete")
        assert allowed.status == "incomplete"
        assert client.v1.invoices.retrieve(allowed.latest_invoice).attempt_count == 1
        _, good = on_clock(client)
        assert subscribe(client, good, plan).status == "active"
        nobody = client.v1.customers.create()
        with pytest.raises(stripe.InvalidRequestError):
            subscribe(client, nobody, plan)


def test_checkout_on_a_clock(sandbox: SandboxProcess, client: stripe.StripeClient) -> None:
    clock, customer = on_clock(client, card=None)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price(client).id, "quantity": 1}],
            "success_url": "https://shop.example.com/done",
        }
    )
    sandbox.control("post", f"/checkout/sessions/{session.id}/pay", card="4242424242424242")
    subscription = client.v1.subscriptions.retrieve(client.v1.checkout.sessions.retrieve(session.id).subscription)
    assert (subscription.created, subscription.status) == (T0, "active")
    advance(client, clock, FEB1 + HOUR)
    assert [i.status for i in invoices_of(client, subscription.id)] == ["paid", "paid"]


def test_checkout_trial_accepts_the_charge_customer_fail_card(
    sandbox: SandboxProcess, client: stripe.StripeClient
) -> None:
    clock, customer = on_clock(client, card=None)
    plan = price(client).id
    trial = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": plan, "quantity": 1}],
            "subscription_data": {"trial_period_days": 7},
            "success_url": "https://shop.example.com/done",
        }
    )
    result = sandbox.control("post", f"/checkout/sessions/{trial.id}/pay", card="4000000000000341")
    assert result["result"] == "succeeded"
    paid_now = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": plan, "quantity": 1}],
            "success_url": "https://shop.example.com/done",
        }
    )
    assert sandbox.control("post", f"/checkout/sessions/{paid_now.id}/pay", card="4000000000000341")["result"] == (
        "declined"
    )
    subscription = client.v1.subscriptions.retrieve(client.v1.checkout.sessions.retrieve(trial.id).subscription)
    advance(client, clock, T0 + 8 * DAY)
    assert client.v1.subscriptions.retrieve(subscription.id).status == "past_due"
