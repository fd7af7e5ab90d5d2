"""Tests of gateway.web: webhooks, API, console."""
