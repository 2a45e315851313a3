"""Cryptography shared by the gateway, the store and the payment and CA sources."""
