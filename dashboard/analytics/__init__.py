"""The "Telephony analytics" admin page: call figures over a date range, charts, CSV."""
