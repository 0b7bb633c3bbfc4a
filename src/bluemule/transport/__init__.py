"""BLE transports: thin adapters between the sans-IO protocol core and a Bluetooth stack.

``base`` holds the interfaces; ``bumble_link`` and ``bleak_link`` implement them.
"""
