"""The dock, the dialogs and what they share with QGIS: widgets, translation, layers."""
