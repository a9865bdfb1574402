"""vendor package."""
