"""The plugin's background work as ``QgsTask``: ``run()`` calls the agent's API, never a widget."""
