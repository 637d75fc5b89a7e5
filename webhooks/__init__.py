"""Outgoing events: the transactional outbox, signed webhooks and e-mail, each delivered with a retry policy."""
