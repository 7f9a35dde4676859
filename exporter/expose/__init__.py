"""What Prometheus sees: metric families, the exposition cache, self-metrics and the HTTP edge."""
