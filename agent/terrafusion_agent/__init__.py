"""TerraFusion agent: keeps a local SpatiaLite copy in sync with a central database.

This package never imports QGIS or Qt: it runs under plain Python and under the
Python that ships with QGIS.
"""

__version__ = "0.1.0"
