"""The demo contacts page: a CRM-like list with call buttons, for trying the product."""
