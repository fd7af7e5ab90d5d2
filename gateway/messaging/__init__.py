"""Moving messages: SMS through Twilio, deliveries to the agent, sessions, the consent sync, and the worker that
runs them. Above the store; below the web and the CLI."""
