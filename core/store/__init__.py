"""Vector stores: the embedded Qdrant engine (`edge`) and a Qdrant server (`server`), one interface."""
