"""The built-in automation types, registered exactly as a third-party plugin registers its own."""
