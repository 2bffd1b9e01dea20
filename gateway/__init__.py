"""The HTTP gateway: JSON over HTTP in front of the gRPC services.

It authenticates end users (JWT bearer tokens), checks what they may do,
validates request bodies, and translates each request into one typed gRPC call
with a deadline and the caller's metadata. It holds no business state.
"""
