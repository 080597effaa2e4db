"""The worker process: intake off channel ``telephony``, the operations, the Telnyx adapter
(the only importer of the SDK), its circuit breaker, the reconciler and credential hygiene."""
