"""The moderation product: a Django project that rates media with `rating_models` bundles."""
