"""Datasets, sampling, transforms and DataModules. Import submodules directly (kept light here)."""
