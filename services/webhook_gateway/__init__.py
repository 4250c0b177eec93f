"""The webhook gateway: verify Turn's signature, publish the raw body with a confirm, answer."""
