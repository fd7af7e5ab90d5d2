"""Tests of gateway.cli: the gateway command."""
