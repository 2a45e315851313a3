"""Gateway security: transport (HSTS, TLS 1.3, HTTPS redirect) and the other controls in front of the app."""
