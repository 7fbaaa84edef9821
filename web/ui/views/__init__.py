"""UI views, one module per page (thin: they read through selectors and change through services)."""
