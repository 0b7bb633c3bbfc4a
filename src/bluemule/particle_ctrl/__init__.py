"""Particle's own BLE control-request channel, as Device OS offers it to phones.

EC-JPAKE (P-256, SHA-256, mbedTLS's TLS encoding) keyed by the device's mobile secret,
then AES-128-CCM request/reply records over a byte stream carried by GATT notifications
and writes (``../shared/reference/particle.md`` §3.7 and §5). This is the path that can
update a device with no bluemule library, including Device OS itself.
"""
