"""Progressive delivery: Argo Rollouts' Rollout, AnalysisTemplate and AnalysisRun, run by gitmoor."""
