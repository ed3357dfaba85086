"""fake_agents."""
