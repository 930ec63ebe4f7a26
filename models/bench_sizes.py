"""Encoder shapes ``monitor bench --encoder-size`` can build with random weights.

Kept apart from ``models.bench`` so that ``monitor --help`` lists the choices without importing torch.
GPU efficiency targets are stated for an XLM-R-base-sized encoder; the shipped model is 384 wide.
"""

ENCODER_SIZES: dict[str, dict[str, int]] = {
    "xlmr-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}
