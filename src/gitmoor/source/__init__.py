"""gitmoor.source."""
