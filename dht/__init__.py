"""The holder index: a Kademlia DHT mapping content hashes to the peers that hold them."""
