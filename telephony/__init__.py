"""Isolated Telnyx telephony for Django.

The web side uses :func:`telephony.client.get_telephony_service`; only the worker side
(``telephony.adapter``) ever imports the Telnyx SDK.
"""
