# The knowledge-graph API (search, neighbourhood, read-only query) lands with the knowledge-graph issue.
urlpatterns: list = []
