"""gitmoor.kube."""
