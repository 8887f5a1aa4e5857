"""Fakes of external services that speak their real protocol on 127.0.0.1."""
