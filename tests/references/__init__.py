"""Independent PyTorch references the tests compare the TensorFlow code against."""
