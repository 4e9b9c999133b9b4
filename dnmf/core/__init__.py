"""The algorithm: the alternating loop, what it minimises, the blockwise products and the local update rules.

Nothing here knows a deployment: the engine reaches the cluster only through the :class:`~dnmf.core.seam.Runtime`
it is given, and nothing in this package imports ``distributed`` (see ``ARCHITECTURE.md``).
"""
