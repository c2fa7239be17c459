"""The ring: the wire (framing, message types, errors) and membership of the overlay."""
