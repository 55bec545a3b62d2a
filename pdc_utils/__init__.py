"""Distance correlation in TensorFlow and diverge training."""
