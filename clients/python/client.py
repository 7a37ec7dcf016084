#!/usr/bin/env python3
"""A pns-gateway client in Python, on the code generate.sh makes from proto/.

It walks the product's main path against a running gateway and checks each answer:
create a local pool, add three virtual numbers, bind XYB, send the call-in, report the
hang-up, read the binding's events, and send a bad request whose google.rpc details
(ErrorInfo reason, BadRequest field) it decodes. Any unexpected answer exits non-zero.

    ./generate.sh && python client.py --target 127.0.0.1:50051

With API keys configured on the server, set PNS_API_KEY to the admin key.
"""

import argparse
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from pns.v1 import (  # noqa: E402
    binding_pb2,
    binding_pb2_grpc,
    call_pb2,
    call_pb2_grpc,
    common_pb2,
    pool_pb2,
    pool_pb2_grpc,
)


class Failed(Exception):
    """An answer that is not what the gateway promises."""


def expect(cond, what):
    if not cond:
        raise Failed(what)


def step(msg):
    print(f"python client: {msg}", flush=True)


def random_digits(n):
    return "".join(str(secrets.randbelow(10)) for _ in range(n))


def error_details(err):
    """The google.rpc.Status of a failed call, with its ErrorInfo and BadRequest unpacked."""
    status = rpc_status.from_call(err)
    expect(status is not None, f"{err.code()} carries no google.rpc.Status details")
    info, bad = None, None
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
    return status, info, bad


def run(target, api_key, timeout):
    metadata = [("authorization", f"Bearer {api_key}")] if api_key else []
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=timeout)
    pools = pool_pb2_grpc.NumberPoolServiceStub(channel)
    bindings = binding_pb2_grpc.BindingServiceStub(channel)
    calls = call_pb2_grpc.CallServiceStub(channel)
    kw = {"metadata": metadata, "timeout": timeout}

    run_id = random_digits(8)
    pool_key = f"py-{run_id}"
    pool = pools.CreatePool(pool_pb2.CreatePoolRequest(pool_key=pool_key), **kw).pool
    expect(pool.provider == common_pb2.PROVIDER_LOCAL, f"pool provider {pool.provider}")
    step(f"created pool {pool.pool_key}")

    # Virtual numbers are unique across pools: a random block per run.
    numbers = [f"8521{run_id}{i}" for i in range(3)]
    added = pools.AddNumbers(
        pool_pb2.AddNumbersRequest(
            pool_key=pool_key,
            numbers=[pool_pb2.NumberSpec(number=n, iso2="HK") for n in numbers],
        ),
        **kw,
    )
    expect((added.added, added.skipped) == (3, 0), f"AddNumbers answered {added}")
    step(f"added {added.added} numbers")

    phone_a, phone_b = "85291112222", "85264654798"
    bound = bindings.BindXyb(
        binding_pb2.BindXybRequest(
            pool_key=pool_key,
            phone_b=phone_b,
            customer_bind_id=f"order-{run_id}",
            bind_expire_seconds=3600,
        ),
        **kw,
    )
    b = bound.binding
    expect(b.state == common_pb2.BINDING_STATE_XYB, f"new binding state {b.state}")
    expect(b.number_x in numbers and b.number_y in numbers, "X and Y come from the pool")
    step(f"bound XYB {b.binding_id}: X {b.number_x}, Y {b.number_y}")

    call_id = f"py-call-{run_id}"
    routed = calls.NotifyCallIn(
        call_pb2.NotifyCallInRequest(caller=phone_a, called=b.number_x, call_id=call_id), **kw
    )
    expect(routed.decision == call_pb2.DECISION_CONNECT, f"decision {routed.decision}")
    expect(routed.connect_to == phone_b, "A's call to X reaches B")
    expect(routed.display_number == b.number_y, "B is shown Y")
    expect(routed.binding.state == common_pb2.BINDING_STATE_AXYB, "the first call-in converts")
    step(f"call-in routed: connect, shown {routed.display_number}")

    report = calls.ReportCallEvent(
        call_pb2.ReportCallEventRequest(
            call_id=call_id,
            kind=call_pb2.CALL_EVENT_KIND_HANGUP,
            duration_seconds=42,
            release_direction=call_pb2.RELEASE_DIRECTION_CALLEE,
            release_cause=16,
        ),
        **kw,
    )
    expect(report.sequence > routed.event_sequence and not report.duplicate, f"{report}")
    step(f"hang-up reported as event {report.sequence}")

    # The binding's events, replayed from the start; the stream stays open (live), so stop
    # at the hang-up.
    stream = calls.WatchEvents(
        call_pb2.WatchEventsRequest(after_sequence=0, binding_id=b.binding_id), **kw
    )
    events = []
    for ev in stream:
        events.append(ev)
        if ev.event_kind == call_pb2.EVENT_KIND_CALL_HANGUP:
            stream.cancel()
            break
    kinds = [ev.kind for ev in events]
    expect(
        kinds == ["binding.created", "binding.converted", "call.incoming", "call.hangup"],
        f"events {kinds}",
    )
    created, converted, incoming, hangup = events
    expect(created.event_kind == call_pb2.EVENT_KIND_BINDING_CREATED, "enum of binding.created")
    expect(created.WhichOneof("details") == "binding_detail", "typed lifecycle detail")
    expect(created.binding_detail.state == common_pb2.BINDING_STATE_XYB, "created as XYB")
    expect(converted.binding_detail.state == common_pb2.BINDING_STATE_AXYB, "converted to AXYB")
    expect(incoming.sequence == routed.event_sequence, "the call-in's event")
    expect(incoming.call_in_detail.decision == call_pb2.DECISION_CONNECT, "typed decision")
    expect(incoming.call_in_detail.display_number == b.number_y, "typed display number")
    expect(hangup.sequence == report.sequence, "the hang-up's event")
    cdr = hangup.call_report_detail
    expect(cdr.duration_seconds == 42 and cdr.release_cause == 16, f"typed CDR {cdr}")
    expect(cdr.release_direction == call_pb2.RELEASE_DIRECTION_CALLEE, "typed release side")
    step(f"read {len(events)} events: {', '.join(kinds)}")

    try:
        bindings.BindXyb(
            binding_pb2.BindXybRequest(pool_key=pool_key, phone_b="12"), **kw
        )
        raise Failed("a bind with a 2-digit phone_b was accepted")
    except grpc.RpcError as err:
        expect(err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"code {err.code()}")
        status, info, bad = error_details(err)
        expect(info is not None, "an ErrorInfo detail")
        expect(info.domain == "pns.gateway", f"ErrorInfo domain {info.domain}")
        expect(info.reason == "MOBILE_NUMBER_ILLEGAL", f"ErrorInfo reason {info.reason}")
        expect(bad is not None, "a BadRequest detail")
        fields = [v.field for v in bad.field_violations]
        expect(fields == ["phone_b"], f"violations on {fields}")
        step(f"bad request decoded: {grpc.StatusCode.INVALID_ARGUMENT.name} {info.reason} on {fields[0]}")
    channel.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="127.0.0.1:50051", help="gateway gRPC address")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    args = p.parse_args()
    started = time.monotonic()
    try:
        run(args.target, os.environ.get("PNS_API_KEY", ""), args.timeout)
    except (Failed, grpc.RpcError, grpc.FutureTimeoutError) as e:
        print(f"python client: FAILED: {e!r}", file=sys.stderr)
        return 1
    print(f"python client: OK in {time.monotonic() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
