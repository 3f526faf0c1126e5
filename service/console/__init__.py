"""The staff console: server-rendered pages under /console/ on the same use cases as the API.

registration  register_console: the blueprint, CSRF protection and session hooks on the app
blueprint     the blueprint, its templates and vendored assets (Pico CSS), headers, error pages
context       the request's session, the signed-in staff member, the clinic's zone, the audit
forms         reading plain HTML forms into typed values and per-field errors
views/        one module per area: auth, today, patients, plans, monitoring, worklist, clinic

Another adapter beside service/api: nothing imports it but the app factory.
"""
