"""Staff views: the day's chair list, the worklist, and the alerts behind it."""
