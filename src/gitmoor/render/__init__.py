"""gitmoor.render."""
