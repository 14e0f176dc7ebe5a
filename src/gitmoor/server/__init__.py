"""gitmoor.server."""
