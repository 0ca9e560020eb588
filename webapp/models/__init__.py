"""All models, importable from one place (one module per area)."""

from webapp.models.api import ApiKey, Hook, HookAlert, HookWindow, IdempotentReply
from webapp.models.audit import AuditEvent, AuditHead
from webapp.models.automation import (
    Deployment,
    DeploymentClient,
    DeploymentInstrument,
    RiskAlert,
    StopRule,
    StrategySignal,
)
from webapp.models.backtests import BacktestRun, Sweep
from webapp.models.clients import Client
from webapp.models.instruments import Instrument
from webapp.models.market import Candle, DailyPnl, WatchlistItem
from webapp.models.notify import Notification, NotificationCursor, NotificationDelivery, NotificationPrefs
from webapp.models.orders import Batch, DeskState, FundsSnapshot, Holding, Order, Position, Trade
from webapp.models.paper import PaperAccount, PaperHolding, PaperOrder, PaperPosition, PaperTrade
from webapp.models.users import User, user_clients

__all__ = [
    "ApiKey",
    "Hook",
    "HookAlert",
    "HookWindow",
    "IdempotentReply",
    "BacktestRun",
    "Sweep",
    "Deployment",
    "DeploymentClient",
    "DeploymentInstrument",
    "RiskAlert",
    "StopRule",
    "StrategySignal",
    "AuditEvent",
    "AuditHead",
    "Batch",
    "Client",
    "DeskState",
    "FundsSnapshot",
    "Holding",
    "Instrument",
    "Order",
    "Position",
    "Trade",
    "Candle",
    "DailyPnl",
    "WatchlistItem",
    "Notification",
    "NotificationCursor",
    "NotificationDelivery",
    "NotificationPrefs",
    "PaperAccount",
    "PaperHolding",
    "PaperOrder",
    "PaperPosition",
    "PaperTrade",
    "User",
    "user_clients",
]
