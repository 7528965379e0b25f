"""How the flows are served: single-host ``serve``, or work pools per lab host (prefect.yaml)."""
