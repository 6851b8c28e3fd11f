"""The exchange and account records that every stage reads and writes."""

from distillguard.events.record import Account, Exchange, Turn
from distillguard.events.schema import (
    ACCOUNT_SCHEMA,
    ENDPOINTS,
    EXCHANGE_SCHEMA,
    SCHEMA_VERSION,
    SIGNUP_PATHWAYS,
    TURN_TYPE,
)

__all__ = [
    "ACCOUNT_SCHEMA",
    "ENDPOINTS",
    "EXCHANGE_SCHEMA",
    "SCHEMA_VERSION",
    "SIGNUP_PATHWAYS",
    "TURN_TYPE",
    "Account",
    "Exchange",
    "Turn",
]
