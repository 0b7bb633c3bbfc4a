// Generated from src/bluemule/protocol/constants.py by
// `python -m bluemule.protocol.header --write`. Do not edit by hand.
#pragma once

#include <cstdint>

namespace bluemule::protocol {

constexpr uint32_t PROTOCOL_VERSION = 1;
constexpr uint32_t MANUFACTURER_ID = 65535;
constexpr uint32_t DEVICE_ID_SIZE = 12;
constexpr uint32_t SHA256_SIZE = 32;
constexpr uint32_t ED25519_SIGNATURE_SIZE = 64;
constexpr uint32_t ED25519_PUBLIC_KEY_SIZE = 32;
constexpr uint32_t KEY_ID_SIZE = 8;
constexpr uint32_t MAX_MANIFEST_SIZE = 2048;
constexpr uint32_t MAX_PARTS = 16;
constexpr uint32_t MAX_NAME_SIZE = 64;
constexpr uint32_t DATA_HEADER_SIZE = 5;
constexpr uint32_t MANIFEST_STREAM = 0;
constexpr uint32_t NO_PART = 255;
constexpr uint32_t MAX_ATT_MTU = 247;
constexpr uint32_t DEFAULT_WINDOW = 4096;
constexpr uint32_t DEFAULT_ACK_INTERVAL = 1024;
constexpr uint32_t ASSETS_PER_PAGE = 4;
constexpr uint32_t MAX_EVENT_NAME_SIZE = 64;
constexpr uint32_t MAX_EVENT_DATA_SIZE = 1024;
constexpr uint32_t EVENT_QUEUE_CAPACITY = 100;
constexpr uint32_t EVENT_QUEUE_BYTES = 32768;
constexpr uint32_t EVENT_SEGMENT_SIZE = 4096;
constexpr uint32_t EVENT_READ_HEADER_SIZE = 12;
constexpr char ADVERTISING_MAGIC[] = "BM";

constexpr char SERVICE_UUID[] = "6d750001-6c65-4b1e-8d3a-626c75656d75";
constexpr char STATUS_UUID[] = "6d750002-6c65-4b1e-8d3a-626c75656d75";
constexpr char CONTROL_UUID[] = "6d750003-6c65-4b1e-8d3a-626c75656d75";
constexpr char RESPONSE_UUID[] = "6d750004-6c65-4b1e-8d3a-626c75656d75";
constexpr char DATA_UUID[] = "6d750005-6c65-4b1e-8d3a-626c75656d75";
constexpr char PROGRESS_UUID[] = "6d750006-6c65-4b1e-8d3a-626c75656d75";

enum class Opcode : uint8_t {
    GET_ASSETS = 0x01,
    MANIFEST_BEGIN = 0x10,
    MANIFEST_COMMIT = 0x11,
    PART_BEGIN = 0x20,
    PART_END = 0x21,
    APPLY = 0x30,
    ABORT = 0x31,
    EVENTS_READ = 0x40,
    EVENTS_ACK = 0x41,
};

enum class Status : uint8_t {
    OK = 0x00,
    BAD_REQUEST = 0x01,
    BAD_STATE = 0x02,
    BUSY = 0x03,
    BAD_MANIFEST = 0x10,
    UNKNOWN_KEY = 0x11,
    BAD_SIGNATURE = 0x12,
    WRONG_DEVICE = 0x13,
    WRONG_PLATFORM = 0x14,
    WRONG_PRODUCT = 0x15,
    OLD_RELEASE = 0x16,
    DEVICE_OS_TOO_OLD = 0x17,
    TOO_LARGE = 0x18,
    ASSETS_UNSATISFIED = 0x19,
    UNSUPPORTED_PART = 0x1a,
    INCOMPLETE = 0x20,
    HASH_MISMATCH = 0x21,
    INVALID_MODULE = 0x22,
    DEVICE_OS_REFUSED = 0x23,
    STORAGE_FULL = 0x24,
    FLASH_ERROR = 0x25,
    UPDATES_DISABLED = 0x26,
    UNKNOWN_EVENT = 0x30,
};

enum class PartKind : uint8_t {
    ASSET = 0x01,
    APPLICATION = 0x02,
};

enum class PartFlag : uint8_t {
    COMPRESSED = 0x01,
};

enum class ManifestFlag : uint8_t {
    ALLOW_DOWNGRADE = 0x01,
};

enum class SignatureAlgorithm : uint8_t {
    ED25519 = 0x01,
};

enum class StatusFlag : uint8_t {
    SAFE_MODE = 0x01,
    APP_CONFIRMED = 0x02,
    TRANSFER_OPEN = 0x04,
    UPDATE_PENDING = 0x08,
};

enum class Capability : uint8_t {
    COMPRESSED_MODULES = 0x01,
    NOTIFICATIONS = 0x02,
    EVENTS = 0x04,
};

enum class EventFlag : uint8_t {
    HAS_DATA = 0x01,
};

enum class ProgressFlag : uint8_t {
    GAP = 0x01,
    COMPLETE = 0x02,
};

enum class AdvertisingFlag : uint8_t {
    SAFE_MODE = 0x01,
    TRANSFER_OPEN = 0x02,
    UPDATE_PENDING = 0x04,
    EVENTS_QUEUED = 0x08,
};

}  // namespace bluemule::protocol
