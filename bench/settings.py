"""Benchmark settings: the product's, plus a trivial view to compare the status view with."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
