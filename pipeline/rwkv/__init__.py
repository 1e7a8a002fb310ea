"""RWKV-4 support: the WKV op on flash-linear-attention's Triton kernel, BlinkDL ``.pth`` checkpoints in and
out, and trainable initial states (state tuning)."""
