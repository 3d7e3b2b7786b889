#!/usr/bin/env python3
"""Cross-checks Rivulet's record batch codec against kafka-python, an independent implementation.

Driven by crates/format/tests/kafka_python.rs; every file it reads or writes lives in one work
directory given on the command line. Commands:

  deps                exit 0 if kafka-python and all its codecs import, else list what is
                      missing on stderr and exit 3
  generate DIR        build batches with kafka-python, one per codec, as DIR/py-<name>.bin,
                      with the records they hold in DIR/py-<name>.expected.json
  check DIR           (a) compare each DIR/py-<name>.decoded.json (what Rivulet decoded) with
                      its .expected.json; (b) parse each DIR/rs-<name>.bin (built by Rivulet)
                      with kafka-python, check its CRC, and compare it with its .expected.json;
                      exit 1 on any mismatch
  murmur2 FILE        print kafka-python's murmur2, as a signed 32-bit integer, for each
                      hex-encoded key in the JSON list FILE, one per line

A description (.json) is one object:
  {"codec": "gzip", "timestamp_type": "create" | "log_append", "base_offset": int,
   "producer_id": int, "producer_epoch": int, "base_sequence": int,
   "records": [{"offset": int, "timestamp": int, "key": hex | null, "value": hex | null,
                "headers": [[str, hex | null], ...]}, ...]}
"""

import json
import struct
import sys
from pathlib import Path

MISSING_DEPS_EXIT = 3

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
LOG_APPEND_TIME_BIT = 0x08


def missing_deps():
    """Names of the pip packages whose modules cannot be used."""
    try:
        from kafka import codec
        import kafka.record.default_records  # noqa: F401
        import kafka.partitioner.default  # noqa: F401
    except ImportError:
        return ["kafka-python"]
    missing = []
    if not codec.has_snappy():
        missing.append("python-snappy")
    if not codec.has_lz4():
        missing.append("lz4")
    if not codec.has_zstd():
        missing.append("zstandard")
    return missing


def hex_or_none(data):
    return None if data is None else bytes(data).hex()


def bytes_or_none(text):
    return None if text is None else bytes.fromhex(text)


# --- generate ---------------------------------------------------------------------------------

def sample_records(seed):
    """Varied records: null and empty keys and values, headers with null values and non-ASCII
    names, timestamps that go backwards, and values long and repetitive enough that every codec
    actually compresses (kafka-python silently falls back to no compression otherwise)."""
    base_ts = 1_700_000_000_000 + seed * 1_000
    records = [
        (base_ts, b"user-1", b"signed up " * 40, [("trace-id", b"abc123")]),
        (base_ts + 15, None, b"", []),
        (base_ts - 250, b"", None, [("empty", b""), ("null", None)]),
        (base_ts + 7, b"user-\xff\x00\x01", b"\x00" * 300, [("h\u00e9ader-\u20ac", b"\xfe")]),
        (base_ts + 3_600_000, b"k" * 200, bytes(range(256)) * 4, []),
    ]
    for i in range(20):
        records.append((base_ts + i * 3, b"key-%d" % (i % 4), b"value %d " % i * 20, []))
    return records


def build_with_kafka_python(codec, records, producer=None, base_offset=0):
    from kafka.record.default_records import DefaultRecordBatchBuilder

    if producer is None:
        producer = (-1, -1, -1)
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=CODEC_IDS[codec], is_transactional=False,
        producer_id=producer[0], producer_epoch=producer[1], base_sequence=producer[2],
        batch_size=1 << 20)
    for offset_delta, (ts, key, value, headers) in enumerate(records):
        meta = builder.append(offset_delta, timestamp=ts, key=key, value=value, headers=headers)
        if meta is None:
            raise SystemExit("kafka-python refused record %d" % offset_delta)
    data = bytearray(builder.build())
    # The base offset lies outside the CRC, as in a broker's log; kafka-python always writes 0.
    struct.pack_into(">q", data, 0, base_offset)
    attributes = struct.unpack_from(">h", data, 21)[0]
    if attributes & 0x07 != CODEC_IDS[codec]:
        raise SystemExit("kafka-python did not compress with %s (attributes %#x)"
                         % (codec, attributes))
    return bytes(data)


def describe(codec, records, producer, base_offset):
    return {
        "codec": codec,
        "timestamp_type": "create",
        "base_offset": base_offset,
        "producer_id": producer[0],
        "producer_epoch": producer[1],
        "base_sequence": producer[2],
        "records": [
            {
                "offset": base_offset + i,
                "timestamp": ts,
                "key": hex_or_none(key),
                "value": hex_or_none(value),
                "headers": [[k, hex_or_none(v)] for k, v in headers],
            }
            for i, (ts, key, value, headers) in enumerate(records)
        ],
    }


def generate(work):
    cases = [(codec, codec, (-1, -1, -1), 0) for codec in CODEC_IDS]
    cases.append(("zstd-idempotent", "zstd", (4242, 7, 1000), 123_456_789))
    cases.append(("none-single", "none", (-1, -1, -1), 5))
    for seed, (name, codec, producer, base_offset) in enumerate(cases):
        records = sample_records(seed)
        if name == "none-single":
            records = records[:1]
        data = build_with_kafka_python(codec, records, producer, base_offset)
        (work / ("py-%s.bin" % name)).write_bytes(data)
        description = describe(codec, records, producer, base_offset)
        (work / ("py-%s.expected.json" % name)).write_text(json.dumps(description, indent=1))
    print("generated %d batches" % len(cases))


# --- check ------------------------------------------------------------------------------------

def compare(name, expected, actual, problems):
    for field in ("codec", "timestamp_type", "base_offset", "producer_id", "producer_epoch",
                  "base_sequence"):
        if expected.get(field) != actual.get(field):
            problems.append("%s: %s is %r, expected %r"
                            % (name, field, actual.get(field), expected.get(field)))
    exp_records, act_records = expected["records"], actual["records"]
    if len(exp_records) != len(act_records):
        problems.append("%s: %d records, expected %d" % (name, len(act_records), len(exp_records)))
    for i, (exp, act) in enumerate(zip(exp_records, act_records)):
        for field in ("offset", "timestamp", "key", "value", "headers"):
            if exp[field] != act[field]:
                problems.append("%s: record %d %s is %r, expected %r"
                                % (name, i, field, act[field], exp[field]))


def parse_with_kafka_python(data):
    from kafka.record.default_records import DefaultRecordBatch

    batch = DefaultRecordBatch(data)
    if batch.size_in_bytes != len(data):
        raise ValueError("batch is %d bytes but the file has %d" % (batch.size_in_bytes, len(data)))
    if not batch.validate_crc():
        raise ValueError("kafka-python rejects the CRC")
    codec = {v: k for k, v in CODEC_IDS.items()}[batch.compression_type]
    described = {
        "codec": codec,
        "timestamp_type": "log_append" if batch.attributes & LOG_APPEND_TIME_BIT else "create",
        "base_offset": batch.base_offset,
        "producer_id": batch.producer_id,
        "producer_epoch": batch.producer_epoch,
        "base_sequence": batch.base_sequence,
        "records": [
            {
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": hex_or_none(r.key),
                "value": hex_or_none(r.value),
                "headers": [[k, hex_or_none(v)] for k, v in r.headers],
            }
            for r in batch
        ],
    }
    if batch.records_count != len(described["records"]):
        raise ValueError("recordCount %d but %d records"
                         % (batch.records_count, len(described["records"])))
    if batch.last_offset_delta != batch.records_count - 1:
        raise ValueError("lastOffsetDelta %d with %d records"
                         % (batch.last_offset_delta, batch.records_count))
    if described["timestamp_type"] == "create":
        if batch.first_timestamp != described["records"][0]["timestamp"]:
            raise ValueError("baseTimestamp %d is not the first record's" % batch.first_timestamp)
        latest = max(r["timestamp"] for r in described["records"])
        if batch.max_timestamp != latest:
            raise ValueError("maxTimestamp %d, records reach %d" % (batch.max_timestamp, latest))
    return described


def check(work):
    problems = []
    checked = 0

    # (a) Rivulet decoded kafka-python's batches.
    for expected_path in sorted(work.glob("py-*.expected.json")):
        name = expected_path.name[: -len(".expected.json")]
        decoded_path = work / ("%s.decoded.json" % name)
        if not decoded_path.exists():
            problems.append("%s: Rivulet wrote no decoded description" % name)
            continue
        compare(name, json.loads(expected_path.read_text()),
                json.loads(decoded_path.read_text()), problems)
        checked += 1

    # (b) kafka-python parses Rivulet's batches.
    for bin_path in sorted(work.glob("rs-*.bin")):
        name = bin_path.stem
        expected = json.loads((work / ("%s.expected.json" % name)).read_text())
        try:
            actual = parse_with_kafka_python(bin_path.read_bytes())
        except Exception as err:  # any parse failure is a mismatch to report
            problems.append("%s: kafka-python cannot parse it: %r" % (name, err))
            continue
        compare(name, expected, actual, problems)
        checked += 1

    for problem in problems:
        print("MISMATCH " + problem, file=sys.stderr)
    print("checked %d batches, %d mismatches" % (checked, len(problems)))
    return 1 if problems or checked == 0 else 0


# --- murmur2 ----------------------------------------------------------------------------------

def murmur2(keys_file):
    from kafka.partitioner.default import murmur2 as kafka_murmur2

    for key_hex in json.loads(Path(keys_file).read_text()):
        h = kafka_murmur2(bytes.fromhex(key_hex)) & 0xFFFFFFFF
        print(h - (1 << 32) if h >= 1 << 31 else h)


def main(argv):
    if len(argv) >= 2 and argv[1] == "deps":
        missing = missing_deps()
        if missing:
            print("missing Python packages: " + " ".join(missing), file=sys.stderr)
            return MISSING_DEPS_EXIT
        return 0
    if len(argv) == 3 and argv[1] == "generate":
        generate(Path(argv[2]))
        return 0
    if len(argv) == 3 and argv[1] == "check":
        return check(Path(argv[2]))
    if len(argv) == 3 and argv[1] == "murmur2":
        murmur2(argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
