"""Sources the sync jobs read: HTTP APIs, CSV files, the Markdown vault."""
