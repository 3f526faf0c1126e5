"""One flask-smorest blueprint per resource: thin views that call one use case and commit."""
