"""The wire contract (``engine.proto``), its generated code and the numpy <-> protobuf codec."""
