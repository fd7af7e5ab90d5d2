"""Tests of gateway.core: the pure logic."""
