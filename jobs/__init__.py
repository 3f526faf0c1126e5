"""The reminder runner: APScheduler bootstrap, job functions and delivery channels."""
