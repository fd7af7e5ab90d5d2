"""The pure logic: every decision the gateway makes, as functions and values. Imports neither Flask nor the
store, so each piece is tested (and mutation-tested) on its own."""
