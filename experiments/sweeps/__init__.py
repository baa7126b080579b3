"""Sweeps: many ordinary training runs nested under one parent run (grids, random points, seed statistics)."""
