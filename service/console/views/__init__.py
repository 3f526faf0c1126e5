"""The console's pages, one module per area; importing them adds their routes to the blueprint."""
