"""gitmoor.cli."""
