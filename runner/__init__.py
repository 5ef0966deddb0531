"""Orchestration: recipes, the runner, the plan, the run funnel and Slurm submission."""
