"""The admin side of visearch: read a catalog, fetch its images, fill the collection."""
