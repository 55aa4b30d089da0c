"""Audio in: decoding uploads, finding speech, and mapping times back to the file."""
