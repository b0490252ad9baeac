"""The client side of the agent, for programs that drive it: the QGIS plugin, scripts.

No Qt here. These modules talk to a running agent over its local HTTP API, start one,
read and write its configuration file; ``terrafusion_agent.api`` decides which to use.
"""
