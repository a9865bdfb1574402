"""proto.ipv6 package."""
