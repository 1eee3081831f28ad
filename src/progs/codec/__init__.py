"""The progressive bitstream: container (chunks, CRC), header, structure and attribute coding, and
the encoder/decoder that compose them (``progs.codec.stream``). Normative text: docs/FORMAT.md."""
