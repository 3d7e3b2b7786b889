#!/usr/bin/env python3
"""Talks to a running Rivulet server with a client that is not ours: stubs generated from
proto/ by grpcio-tools, calls made by grpcio. Creates a topic, produces, fetches, commits and
reads the commit back, and checks one error code.

Usage: grpc_client_check.py HOST:PORT [TOPIC]

Exit status: 0 when every check passed, 1 when a check failed, 3 when a Python module it needs
is missing (the caller decides whether that is a skip or a failure).
"""

import importlib
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_ROOT = os.path.join(REPO, "proto")
PROTOS = ["rivulet/v1/records.proto", "rivulet/v1/log.proto", "rivulet/v1/admin.proto"]
MISSING_MODULE = 3


def generate_stubs(out_dir):
    from grpc_tools import protoc

    for proto in PROTOS:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"--python_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                proto,
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {proto} with status {status}")
    sys.path.insert(0, out_dir)


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


def run(address, topic):
    import grpc

    log_pb2 = importlib.import_module("rivulet.v1.log_pb2")
    log_grpc = importlib.import_module("rivulet.v1.log_pb2_grpc")
    admin_pb2 = importlib.import_module("rivulet.v1.admin_pb2")
    admin_grpc = importlib.import_module("rivulet.v1.admin_pb2_grpc")
    records_pb2 = importlib.import_module("rivulet.v1.records_pb2")

    with grpc.insecure_channel(address) as channel:
        admin = admin_grpc.AdminStub(channel)
        log = log_grpc.LogStub(channel)

        admin.CreateTopic(admin_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)

        produced = [
            records_pb2.ProduceRecord(key=b"k1", value=b"first"),
            records_pb2.ProduceRecord(value=b""),
            records_pb2.ProduceRecord(
                key=b"k3",
                value=b"third",
                headers=[records_pb2.RecordHeader(key="trace", value=b"abc")],
            ),
        ]
        reply = log.Produce(
            log_pb2.ProduceRequest(
                topic=topic,
                partition=0,
                durability=records_pb2.DURABILITY_DURABLE,
                records=log_pb2.ProduceRecords(records=produced),
            ),
            timeout=10,
        )
        check(len(reply.batches) == 1, "one batch acknowledged")
        check(reply.batches[0].base_offset == 0, "first offset is 0")
        check(reply.batches[0].last_offset == 2, "last offset is 2")
        check(reply.batches[0].durable_offset >= 3, "durable produce is fsynced")

        fetched = log.Fetch(log_pb2.FetchRequest(topic=topic, partition=0, offset=1), timeout=10)
        check([r.offset for r in fetched.records] == [1, 2], "fetch starts at offset 1")
        check(not fetched.records[0].HasField("key"), "null key stays null")
        check(fetched.records[0].HasField("value"), "empty value is present")
        check(fetched.records[0].value == b"", "empty value stays empty")
        check(fetched.records[1].headers[0].key == "trace", "header name")
        check(fetched.records[1].headers[0].value == b"abc", "header value")
        check(fetched.high_watermark == 3, "high watermark")
        check(fetched.next_offset == 3, "next offset")

        log.CommitOffsets(
            log_pb2.CommitOffsetsRequest(
                group="python",
                offsets=[log_pb2.OffsetCommit(topic=topic, partition=0, offset=3)],
            ),
            timeout=10,
        )
        committed = log.FetchOffsets(log_pb2.FetchOffsetsRequest(group="python"), timeout=10)
        check(
            [(c.topic, c.partition, c.offset) for c in committed.offsets] == [(topic, 0, 3)],
            "committed offset reads back",
        )

        try:
            log.Fetch(log_pb2.FetchRequest(topic=topic, partition=0, offset=99), timeout=10)
            check(False, "fetch past the log end fails")
        except grpc.RpcError as err:
            check(err.code() == grpc.StatusCode.OUT_OF_RANGE, f"OUT_OF_RANGE, got {err.code()}")
            check("valid offsets are 0 to 3" in err.details(), "range in the message")

    print("python grpc client: all checks passed")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    address = sys.argv[1]
    topic = sys.argv[2] if len(sys.argv) == 3 else "python-check"
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError as err:
        print(f"missing python module: {err.name} (run scripts/install-test-deps.sh)")
        return MISSING_MODULE
    with tempfile.TemporaryDirectory() as out_dir:
        generate_stubs(out_dir)
        run(address, topic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
