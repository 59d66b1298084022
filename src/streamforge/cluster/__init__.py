"""Several StreamForge nodes over one PostgreSQL database, coordinated through Redis.

Cluster mode is on when ``STREAMFORGE_REDIS_URL`` is set; a single node on the
embedded SQLite default never imports this package (nor the ``redis``
client, an optional dependency: ``pip install streamforge[cluster]``).

The pieces, each a thin layer over atomic Redis operations (Lua scripts or
``SET NX PX``), never a home-made lock:

* :mod:`~streamforge.cluster.node` — the node's stable id (file ``node-id``
  in the data dir), its name, and the registry of live nodes (one key per
  node with a TTL renewed by a heartbeat).
* :mod:`~streamforge.cluster.leases` — account connection leases: one sorted
  set per provider account whose members are lease ids scored by their
  expiry on the Redis clock; acquire, renew and reconcile never let the set
  grow beyond the account's ``max_connections``.
* :mod:`~streamforge.cluster.slots` — :class:`ClusterSlots`, the bridge
  between the synchronous per-process :class:`~streamforge.streaming.slots.AccountSlots`
  the failover policy uses and the cluster-wide leases.
* :mod:`~streamforge.cluster.leader` — one leader among the nodes (periodic
  jobs run on the leader only).
* :mod:`~streamforge.cluster.owners` — which node owns (reads upstream for)
  a channel, and the URL other nodes relay it from.
* :mod:`~streamforge.cluster.service` — :class:`Cluster`, all of the above
  started and stopped together from the settings.

Every expiry is measured on the Redis server's clock (``TIME`` inside the
scripts) or with Redis key TTLs, so the nodes' own clocks may disagree.
"""
