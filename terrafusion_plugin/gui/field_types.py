"""The type of a ``QgsField``, as the running QGIS takes it.

QGIS 3.38 moved ``QgsField`` to ``QMetaType.Type`` (``QVariant.Type`` is deprecated
there, and gone with Qt 6); the QGIS 3.22 this plugin still supports only takes
``QVariant.Type``. The plugin names types as ``QMetaType.Type`` and lets this module
spell them for the QGIS it runs in: both enums share their numbers.
"""

from __future__ import annotations

from qgis.core import Qgis
from qgis.PyQt.QtCore import QMetaType

#: whether QgsField takes a QMetaType.Type (QGIS 3.38 and later)
TAKES_METATYPE = Qgis.QGIS_VERSION_INT >= 33800


def field_type(meta: QMetaType.Type):
    """``meta`` as ``QgsField(name, type)`` takes it in this QGIS."""
    if TAKES_METATYPE:
        return meta
    from qgis.PyQt.QtCore import QVariant

    return QVariant.Type(int(meta))
