"""gitmoor.secrets."""
