"""Data layer: dataset adapters, image and audio front-ends, negative audio, loaders."""
