"""Notifications: one digest email per reconcile that has news, delivered from an outbox.

``config`` resolves the ``[mail]`` settings (the one place that does); ``digest`` builds the message;
the outbox lives in the ledger and ``outbox`` delivers it without holding the ledger lock; ``smtp``
talks to the server, with backoff on transient errors and none on permanent ones.
"""
