"""The CallMeter API: the client, its rate limiter, errors, response models and the key."""
