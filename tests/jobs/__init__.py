"""Runner and delivery channel tests."""
