"""AT command channel (host role) as sans-IO pieces: line splitter, result codes, chat scripts."""

from larappp.proto.at.chat import DEFAULT_ABORTS, ChatScript, ChatStep, StepCheck, check_step
from larappp.proto.at.core import (
    AtClient,
    AtEvent,
    AtUsageError,
    CarrierLost,
    CommandTimedOut,
    FinalResult,
    LineReceived,
    LineSplitter,
    ResponseReceived,
    UrcReceived,
    parse_final_result,
)
from larappp.proto.at.masking import mask

__all__ = [
    "DEFAULT_ABORTS",
    "AtClient",
    "AtEvent",
    "AtUsageError",
    "CarrierLost",
    "ChatScript",
    "ChatStep",
    "CommandTimedOut",
    "FinalResult",
    "LineReceived",
    "LineSplitter",
    "ResponseReceived",
    "StepCheck",
    "UrcReceived",
    "check_step",
    "mask",
    "parse_final_result",
]
