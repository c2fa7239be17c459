"""The shared folder: scanning, manifests, versions, transfers and fetch planning."""
