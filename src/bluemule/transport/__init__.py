"""BLE transports: thin adapters between the sans-IO protocol core and a Bluetooth stack.

``base`` holds the interfaces. ``bumble_link`` implements them over Bumble (GATT server,
central, scanning, real controllers by moniker) and ``bumble_virtual`` provides the
in-process virtual link; ``bleak_link`` is the central over the OS stack (extra ``ble``).
``monikers`` parses target strings, ``faults`` wraps links to inject failures in tests
and ``advertising`` builds and parses advertising payloads.
"""
