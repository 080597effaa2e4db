"""The demo "Contacts" page: what a host app's page with call buttons looks like."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

DEMO_CONTACTS = [
    {"name": "Ada Lovelace", "company": "Analytical Engines", "number": "+12025550143"},
    {"name": "Grace Hopper", "company": "Compilers Inc.", "number": "+13125550178"},
    {"name": "Alan Turing", "company": "Bletchley Systems", "number": "+14165550199"},
    {"name": "Katherine Johnson", "company": "Trajectory Labs", "number": "+17575550112"},
    {"name": "Edsger Dijkstra", "company": "Shortest Path LLC", "number": "+16045550166"},
]


def contacts(request: HttpRequest) -> HttpResponse:
    """Sample people with numbers; each row carries the host app's call button."""
    return render(request, "dashboard/contacts.html", {"contacts": DEMO_CONTACTS})
