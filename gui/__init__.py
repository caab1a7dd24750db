"""smartbatt desktop app (PySide6 + pyqtgraph): a client of the smartbatt library."""
