"""Fuzz what the relay reads from others: sync bodies, blob bytes, manufacturer data.

The CI pass is short (``BLUEMULE_FUZZ_EXAMPLES`` examples per test, 400 by default); run
longer with ``BLUEMULE_FUZZ_EXAMPLES=5000 .venv/bin/pytest -m fuzz tests/relay/test_fuzz.py``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluemule.relay.cache import BlobCache, CorruptBlobError
from bluemule.relay.scan import advertisement_from_manufacturer_data
from bluemule.relay.server_client import RejectedError, parse_desired

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("BLUEMULE_FUZZ_EXAMPLES", "400"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
VALID_ITEM: dict[str, Any] = {
    "device_id": "E00FCE680000000000000001",
    "release_id": 3,
    "manifest": base64.b64encode(b"manifest").decode(),
    "manifest_sha256": "ab" * 32,
    "parts": [{"index": 0, "name": "app.bin", "blob": "CD" * 32, "size": 10}],
    "platform_id": 13,
    "setup_code": "A1B2C3",
    "min_device_os": 6300,
    "device_os_parts": [{"index": 0, "name": "sp.bin", "blob": "EF" * 32, "size": 20}],
    "mobile_secret_sealed": "AQID",
}


@FUZZ
@given(JSON)
def test_any_sync_body_parses_or_is_rejected(body: Any) -> None:
    try:
        desired = parse_desired({"devices": body} if isinstance(body, list) else body)
    except RejectedError:
        return
    assert all(u.device_id == u.device_id.lower() for u in desired.values())


@FUZZ
@given(st.sampled_from(sorted(VALID_ITEM)), JSON)
def test_a_sync_item_with_one_field_replaced(field: str, value: Any) -> None:
    try:
        desired = parse_desired({"devices": [{**VALID_ITEM, field: value}]})
    except RejectedError:
        return
    (update,) = desired.values()
    assert (
        update.device_id == str(value if field == "device_id" else VALID_ITEM["device_id"]).lower()
    )
    assert all(p.sha256 == p.sha256.lower() for p in update.parts)


@FUZZ
@given(st.binary(min_size=1, max_size=3000), st.data())
def test_a_blob_written_in_any_chunks_commits_and_a_changed_byte_is_refused(
    data: bytes, draw: st.DataObject
) -> None:
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=6)))
    corrupt = draw.draw(st.none() | st.integers(0, len(data) - 1))
    sha = hashlib.sha256(data).hexdigest()
    sent = bytearray(data)
    if corrupt is not None:
        sent[corrupt] ^= 0x01
    with tempfile.TemporaryDirectory() as root:
        cache = BlobCache(Path(root))
        partial = cache.partial(sha, len(data))
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            partial.write(bytes(sent[start:end]))
            partial.close()  # an interruption between chunks: resume from the file
            assert partial.offset == end
        if corrupt is None:
            partial.commit()
            assert cache.read(sha) == data
        else:
            with pytest.raises(CorruptBlobError):
                partial.commit()
            assert not cache.has(sha) and partial.offset == 0


@FUZZ
@given(st.integers(0, 0xFFFF), st.binary(max_size=40))
def test_manufacturer_data_is_an_advertisement_or_none(company: int, value: bytes) -> None:
    advert = advertisement_from_manufacturer_data(company, value)
    if advert is not None:
        assert advert.encode() == struct.pack("<H", company) + value
