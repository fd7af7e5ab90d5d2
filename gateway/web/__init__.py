"""The HTTP face: Twilio's webhooks and their signatures, the API, the console, health and metrics. Above the
messaging layer; ``gateway.create_app`` registers its blueprints."""
