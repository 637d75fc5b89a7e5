"""The web application: the REST API under /api/v1 and the Russian-language UI (Flask)."""
