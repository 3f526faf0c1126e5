"""Treatment: plans from a regimen, the screening gate, doses, monitoring tasks and lab results."""
