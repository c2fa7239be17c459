"""The node as a whole: lifecycle, discovery, the prompt; wires ring, dht and sync together."""
