"""marshmallow schemas: the API's wire format, one module per resource."""
