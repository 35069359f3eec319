"""Pages: templates, static sources, front-end packages (package.json) and the page views."""
