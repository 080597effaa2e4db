"""A local, stateful stand-in for the Telnyx API v2 (``manage.py telnyx_sandbox``).

It serves the operations of ``tests/contract/telnyx/telnyx-openapi-subset.yml`` under ``/v2`` so
the official SDK works against it, plays call lifecycles with signed webhooks, injects
faults, and logs every request for tests to audit. It never imports ``telnyx``.
Start and steer it with :mod:`devserver.sandbox.control`.
"""
