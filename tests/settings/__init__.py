"""Tests of gateway.settings."""
