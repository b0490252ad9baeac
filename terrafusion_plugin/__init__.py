"""TerraFusion for QGIS: the plugin's entry point.

QGIS imports this package at start-up, so it stays tiny: everything else, and the
bundled agent, is imported only when QGIS asks for the plugin.
"""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    """Return the plugin instance for the QGIS interface ``iface``."""
    from .bundle import use_bundled_packages

    use_bundled_packages()
    from .plugin import TerraFusionPlugin

    return TerraFusionPlugin(iface)
