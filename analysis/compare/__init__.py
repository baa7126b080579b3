"""Two networks compared by what their maps do: probe activations, map matching by correlation, linear CKA."""
