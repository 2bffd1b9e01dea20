"""Code the billing services share: settings, errors, database, idempotency, gRPC server plumbing.

Nothing here imports a service package.
"""
