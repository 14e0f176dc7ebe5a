"""gitmoor.engine."""
