"""proto.ppp package."""
