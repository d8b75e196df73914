"""A real AMI stream recorded from the lab (6 calls, names with Greek and Latin-1 letters) replayed
through the codec at random chunk sizes: the same typed events every time, names intact."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from callflow.ami import AmiCodec, UnknownEvent, parse_event
from callflow.ami.events import AgentConnect, Newchannel, QueueCallerJoin

SAMPLE = Path(__file__).parent / "data" / "lab-queue-calls-sample.ami"
DATA = SAMPLE.read_bytes()
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def replay(chunk_sizes: list[int]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    codec = AmiCodec()
    out = []
    pos = 0
    sizes = iter(chunk_sizes)
    while pos < len(DATA):
        size = next(sizes, 65536)
        for msg in codec.feed(DATA[pos:pos + size]):
            out.append((msg.kind, msg.headers))
        pos += size
    return out


WHOLE = replay([len(DATA)])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=200))
def test_any_chunking_of_a_real_stream_gives_the_same_messages(sizes: list[int]) -> None:
    assert replay(sizes) == WHOLE


def test_real_stream_types_every_call_event_and_keeps_the_rest() -> None:
    events = [parse_event(m, NOW) for m in AmiCodec().feed(DATA) if m.kind == "event"]
    names = {e.chan.caller_id_name for e in events if isinstance(e, Newchannel) and e.chan}
    assert {"Jérôme Ελένη", "Ñoño Über", "Warga Manado"} <= names
    joins = [e for e in events if isinstance(e, QueueCallerJoin)]
    connects = [e for e in events if isinstance(e, AgentConnect)]
    assert joins
    assert connects
    assert {c.linkedid for c in connects} <= {j.linkedid for j in joins}
    unknown = {e.name for e in events if isinstance(e, UnknownEvent)}
    assert unknown <= {"TestEvent"}  # everything else the lab sends is typed
    # Asterisk stamps every event except the FullyBooted it sends each new session at login: that one
    # falls back to the engine's clock and says so.
    untimed = {e.name for e in events if e.time_source != "ami_timestamp"}
    assert untimed == {"FullyBooted"}
