"""A local stand-in for Stripe: a small stateful server speaking Stripe's HTTP API.

It serves the endpoints the platform uses (customers, products, prices, Checkout
Sessions with a hosted payment page, payment intents, charges, refunds, the
billing portal, webhook endpoints and events), keeps its state in memory, and
delivers signed webhooks the way Stripe does. `python -m stripe_sandbox` runs it;
README.md beside this file says how to use it.
"""
