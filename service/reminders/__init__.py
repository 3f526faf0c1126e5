"""Reminders, from the schedule to the patient: derive, time, queue, deliver, acknowledge.

derive           the reminders a plan's schedule calls for, kept in step in the same transaction
timing           wall-clock times to UTC instants: DST gaps and folds, quiet hours
dispatch         the runner's use cases: claim due reminders under a lease, deliver, record attempts
channels         the interface every delivery channel implements (implementations: jobs/channels)
retry            backoff with jitter for failed deliveries
messages         what a reminder says, per kind and audience
inbox            the in-app inbox: post once, sync by cursor, mark read
acknowledgements what patients and staff see of reminders: upcoming, acknowledged, check-in answers
metrics          the runner's counters and the figures /metrics shows
"""
