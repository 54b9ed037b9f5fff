"""NRP-core's protobuf message packages, compiled from this folder's ``.proto`` files.

``from nrp_protobuf import dump_pb2`` works as in NRP-core. The generated ``*_pb2`` modules
are committed; ``python -m neuroloop.protocol.generate`` rewrites them.
"""
