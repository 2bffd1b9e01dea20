"""The endpoints, one module per resource; each returns its `Operation`s."""
