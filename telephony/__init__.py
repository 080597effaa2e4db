"""Isolated Telnyx telephony for Django.

The web side uses :func:`telephony.web.client.get_telephony_service`; only the worker side
(``telephony.worker.adapter``) ever imports the Telnyx SDK.
"""
