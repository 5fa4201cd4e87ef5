"""Room and Hub actors, the routing core and the loop-hosted Pykka runtime.

Nothing here imports Tornado: actors talk to clients through ``sink.ClientSink``.
"""
