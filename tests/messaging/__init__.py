"""Tests of gateway.messaging: sending, delivery to the agent, sessions, the consent sync."""
