"""Agent profiles shipped with the kit (TOML data read by runner.agents.profiles)."""
