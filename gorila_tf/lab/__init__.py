"""The benchmark lab: `gorila-bench` and its sections, peers, the scaling model."""
