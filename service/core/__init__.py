"""Shared building blocks of the use cases: the acting user, paging, portable SQL, wall clocks."""
