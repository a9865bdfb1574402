"""proto.at package."""
