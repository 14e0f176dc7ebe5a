"""gitmoor.controller."""
