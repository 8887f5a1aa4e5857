"""Encoders turn images and texts into vectors of one space. See `base.Encoder`."""
