"""Session stores (``RedisStore`` lives in :mod:`.redis` and needs the ``redis`` extra)."""
