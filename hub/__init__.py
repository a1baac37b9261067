"""Assembly: configuration, the app factory and lifecycle, the CLI, the dev stack."""
