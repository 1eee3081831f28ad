"""Streaming: the manifest, a static HTTP server with Range support, a progressive client, the viewer."""
