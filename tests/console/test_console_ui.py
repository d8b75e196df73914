"""What the pages are given for issue 18: the call's arrival on agent messages (the pop's "waited" is the
record's answer time), callback changes on the stream, units that serve the category with the suggestion,
and the 403 page an operator gets for the wallboard."""

from __future__ import annotations

from callflow.console.messages import Arrivals, to_message
from callflow.console.wiring import StoreWiring
from callflow.store import StoreLocation
from tests.console.conftest import Console
from tests.console.test_stream import event


def test_agent_messages_carry_the_calls_arrival_at_the_pbx() -> None:
    arrivals = Arrivals(limit=2)
    caller = ("Channel: PJSIP/citizen-ingress-1\nUniqueid: 9.1\nLinkedid: 9.1\nCallerIDNum: 0812\n")
    for raw in (f"Event: Newchannel\n{caller}Timestamp: 1763791540.100000\n",
                # another leg of the same call (the operator's) is not the arrival
                "Event: Newchannel\nChannel: PJSIP/op1-2\nUniqueid: 9.2\nLinkedid: 9.1\n"
                "Timestamp: 1763791545.000000\n"):
        arrivals.see(event(raw))
    connect = to_message(event(f"Event: AgentConnect\n{caller}DestChannel: PJSIP/op1-2\nDestUniqueid: 9.2\n"
                               "Queue: emergency\nMemberName: op1\nInterface: PJSIP/op1\nHoldTime: 4\n"
                               "RingTime: 1\nTimestamp: 1763791547.260000\n"), arrivals)
    assert connect is not None
    assert (connect["arrival"], connect["at"]) == ("2025-11-22T06:05:40.100000+00:00",
                                                  "2025-11-22T06:05:47.260000+00:00")
    for n in (2, 3):  # bounded: the oldest call is forgotten
        arrivals.see(event(f"Event: Newchannel\nChannel: PJSIP/c-{n}\nUniqueid: {n}.1\nLinkedid: {n}.1\n"))
    assert arrivals.of("9.1") is None
    assert "arrival" not in (to_message(event(f"Event: AgentCalled\n{caller}Queue: emergency\n"
                                              "MemberName: op1\nInterface: PJSIP/op1\n"), arrivals) or {})


async def test_units_say_which_categories_they_serve_and_incidents_their_suggestion(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, _ = wired
    async with console.client() as c:
        await console.login(c, "op1")
        units = (await c.get("/api/units")).json()
        fire = {u["id"] for u in units if "fire" in u["serves"]}
        assert fire
        assert all(u["type"] == "fire" for u in units if u["id"] in fire)
        r = await c.post("/api/incidents", json={"category": "fire", "district": "wenang"})
        assert r.status_code == 201, r.text
        [listed] = (await c.get("/api/incidents")).json()
        assert listed["suggested_unit"] == "fire-wenang-1"
        r = await c.post(f"/api/incidents/{listed['id']}/dispatch", json={"unit": "fire-wenang-1"})
        assert r.status_code == 200, r.text
        [listed] = (await c.get("/api/incidents")).json()
        # Wenang's engine is busy now: a free fire unit elsewhere is suggested
        assert listed["suggested_unit"] in fire - {"fire-wenang-1"}
        health = (await c.post("/api/incidents", json={"category": "health", "district": "sario"})).json()
        listed = {i["id"]: i for i in (await c.get("/api/incidents")).json()}
        suggested = listed[health["id"]]["suggested_unit"]
        assert next(u for u in units if u["id"] == suggested)["type"] == "ambulance"


async def test_an_operator_opening_the_wallboard_gets_a_403_page_with_a_way_back(console: Console) -> None:
    async with console.client() as op, console.client() as sup, console.client() as anonymous:
        await console.login(op, "op1")
        await console.login(sup, "sup")
        page = await op.get("/wallboard")
        assert page.status_code == 403
        assert page.headers["content-type"].startswith("text/html")
        assert "You are logged in as operator: the wallboard is for supervisors and admins only" in page.text
        assert '<a id="forbidden-back" href="/console">Back to the operator console</a>' in page.text
        assert (await sup.get("/wallboard")).status_code == 200
        assert (await anonymous.get("/wallboard")).status_code == 200  # the log-in form
