"""Reads. Every list a user sees goes through a selector that scopes it to their projects."""
from trainer_app.selectors.datasets import dataset_list, dataset_versions
from trainer_app.selectors.fleet import worker_list, workers_online
from trainer_app.selectors.runs import design_list, run_list
from trainer_app.selectors.projects import (project_list, project_list_with_roles, user_is_site_admin,
                                            user_project_role)

__all__ = ["design_list", "run_list", "dataset_list", "dataset_versions", "project_list", "project_list_with_roles", "user_is_site_admin", "user_project_role", "worker_list",
           "workers_online"]
