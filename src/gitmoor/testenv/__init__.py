"""gitmoor.testenv."""
