"""The app's pages: one module per panel; each subscribes to the app model and calls its methods."""
