"""The lab: a private LAN of network namespaces on one machine, and nodes driven at their prompts.

Tooling for `python3 -m overlay.lab` and the tests; the node's own modules never import it.
"""
