"""The MQTT / Home Assistant bridge; its sans-IO core is settings, topics, discovery, dashboard."""
