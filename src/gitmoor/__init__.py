"""gitmoor: GitOps continuous delivery that keeps each cluster moored to its Git state."""

__version__ = "0.1.0"
