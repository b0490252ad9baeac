"""The Processing provider ``terrafusion``: the same agent calls as the dock and dialogs,
usable from the toolbox, graphical models, Python and ``qgis_process``."""
