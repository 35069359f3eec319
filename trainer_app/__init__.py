"""Datasets, model designs, runs, sweeps and the fleet: models, services, API, tasks, pages."""
