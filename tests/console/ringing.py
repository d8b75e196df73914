"""A SIPp citizen who rings in a queue and gives up (CANCEL) after a while.

The foundation's ``CallerScript(cancel_after_ms=...)`` puts only optional ``<recv>``s before its pause,
which SIPp refuses to run ("<recv> before <pause> sequence without a mandatory message"), and sends the
CANCEL with ``ack_txn`` (refused: "valid only for ACK messages"). Here the 180 Ringing (sent by
``Queue(...,r)``) is the mandatory message, the CANCEL a plain send, and the ACK of the 487 closes the
INVITE transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from callflow.lab.sipp import CallerScript

_OPTIONAL_180 = '<recv response="180" optional="true" response_txn="invite"/>'
_OPTIONAL_183 = '<recv response="183" optional="true" response_txn="invite"/>'
_CANCEL_AS_ACK = '<send ack_txn="invite"><![CDATA[\n      CANCEL '  # SIPp: ack_txn is for ACKs only
_PLAIN_ACK = "<send><![CDATA[\n      ACK "  # ...and the 487's ACK must close the INVITE transaction


@dataclass
class RingingCaller(CallerScript):
    def scenario_xml(self) -> str:
        xml = super().scenario_xml()
        if self.cancel_after_ms is None:
            return xml
        assert _OPTIONAL_180 in xml, "the foundation's caller scenario changed: revisit this work-around"
        return xml.replace(_OPTIONAL_180, '<recv response="180" response_txn="invite"/>').replace(
            _OPTIONAL_183 + "\n", "").replace(_CANCEL_AS_ACK, "<send><![CDATA[\n      CANCEL ").replace(
            _PLAIN_ACK, '<send ack_txn="invite"><![CDATA[\n      ACK ')
