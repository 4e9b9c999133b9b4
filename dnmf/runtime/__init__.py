"""Ways of running a fit: the implementations of :class:`dnmf.core.seam.Runtime`, cluster configurations, TLS and
worker tuning."""
