"""TerraFusion agent: keeps a local SpatiaLite copy in sync with a central database.

This package never imports QGIS or Qt: it runs under plain Python and under the
Python that ships with QGIS.
"""

# The product's one version: pyproject.toml reads it for the wheel, and
# scripts/package_plugin.py writes it into the plugin's metadata.txt.
__version__ = "0.2.0"
