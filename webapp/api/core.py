"""What every /api/v1 operation shares: the schema library, the one decorator, errors and pages.

One library both validates the requests and writes the OpenAPI 3.1 document: spectree over pydantic v2.
A view declares its query and body models as annotations (`json: TicketIn`) and its replies with
`replies(...)`; spectree validates the request against them before the view runs and builds the
document from the same classes (webapp/api/meta.py serves it). Pydantic's JSON Schema is draft
2020-12, which is what OpenAPI 3.1 uses, so the document needs no translation.

    @bp.post("/things")
    @operation("orders.place", scope="trade", replies=replies(ThingOut, status=201), tag="things")
    def create_thing(json: ThingIn):
        ...
        return ThingOut(...), 201

Every error is `{"error": {"code", "message", "fields"}}` (ApiError); every list is a Page.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import wraps
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from flask import current_app, g, jsonify, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecuritySchemeData

from webapp import inputs
from webapp.access import client_for
from webapp.apikeys import scopes_for
from webapp.extensions import db
from webapp.permissions import allowed

# --- errors ----------------------------------------------------------------------------------------


class ApiError(Exception):
    """An API refusal: status, a stable code for programs, a message for people, messages per field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}
        self.headers = headers or {}

    def response(self):
        body = jsonify(error={"code": self.code, "message": self.message, "fields": self.fields})
        body.status_code = self.status
        body.headers.update(self.headers)
        return body


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable and machine-readable: invalid, unauthorized, forbidden, not_found, ...")
    message: str = Field(description="For a person: what was wrong and what to do.")
    fields: dict[str, str] = Field(
        default_factory=dict, description="A message per field, by its path (`quantities.12`)."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


# the statuses any operation may answer besides its own; 422 is added by spectree for validation
COMMON_ERRORS = (400, 401, 403, 404, 405, 413, 415, 429, 503)


def replies(model: type[BaseModel] | None = None, *, status: int = 200, extra: Sequence[int] = ()) -> Response:
    """An operation's documented replies: its own (model, or None for an empty 204) and every common error."""
    codes: dict[str, Any] = {f"HTTP_{status}": model}
    for code in (*COMMON_ERRORS, *extra):
        codes[f"HTTP_{code}"] = ErrorBody
    return Response(**codes)


def _field_path(location: Sequence[Any]) -> str:
    return ".".join(str(part) for part in location) or "body"


def _validation_failed(req, resp, req_validation_error, instance, model_adapter=None):
    """spectree's `before` hook: a request that failed its schema becomes a 422 with a message per field."""
    if req_validation_error is None:
        return
    fields: dict[str, str] = {}
    for error in req_validation_error.errors(include_url=False, include_input=False):
        message = str(error.get("msg", "Invalid value."))
        ctx = error.get("ctx") or {}
        if error.get("type") == "value_error" and "error" in ctx:  # our parsers' InputError: their own words
            message = str(ctx["error"])
        fields.setdefault(_field_path(error.get("loc", ())), message)
    raise ApiError(422, "invalid", "Some fields are not valid; see `fields`.", fields)


spec = SpecTree(
    "flask",
    title="Fanout API",
    version="v1",
    description=(
        "The desk through JSON: the same roles, client grants, validation, risk review and idempotency as "
        "its pages. Authenticate with `Authorization: Bearer <key>` (keys: your account page). Money is a "
        "decimal string in rupees. Times are UTC (ISO 8601). See docs/api.md."
    ),
    mode="strict",
    annotations=True,
    path="api/v1/spectree",  # spectree's own doc routes are never registered (meta.py serves the document)
    validation_error_status=422,
    validation_error_model=ErrorBody,
    before=_validation_failed,
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer"))],
    security={"bearer": []},
)


# --- the one decorator -----------------------------------------------------------------------------

BODY_METHODS = ("POST", "PUT", "PATCH")
FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
JSON_PLEASE = "Send the body as JSON with Content-Type: application/json."


def operation(permission: str, *, scope: str, replies: Response, tag: str, idempotent: bool = False) -> Callable:
    """An /api/v1 view: the key must hold `scope` (and its role still allow it), the user's role must hold
    `permission` (webapp.permissions), the body must be a JSON object; then spectree validates.
    `idempotent`: a write that honours an Idempotency-Key header (see idempotently())."""
    if scope not in ("read", "trade", "admin"):
        raise KeyError(f"unknown scope {scope!r}")
    allowed("admin", permission)  # an unknown permission fails at import, like requires()

    def decorate(view: Callable) -> Callable:
        validated = spec.validate(resp=replies, tags=[tag])(view)

        @wraps(validated)
        def wrapper(*args, **kwargs):
            key, user = g.api_key, g.api_user
            if scope not in key.scope_list or scope not in scopes_for(user.role):
                raise ApiError(403, "scope", f"This key does not hold the `{scope}` scope this needs.")
            if not allowed(user.role, permission):
                raise ApiError(403, "forbidden", "Your role may not do this.")
            if "client_id" in kwargs:  # a client the user may not see is 404 before anything else is read
                client_for(user, kwargs["client_id"])
            if request.method in BODY_METHODS and request.mimetype in FORM_MIMETYPES:
                raise ApiError(415, "unsupported_media_type", JSON_PLEASE)  # (its body was parsed away as a form)
            if request.method in BODY_METHODS and request.get_data(cache=True):  # a bodiless POST needs none
                _require_json_object()
            if idempotent and "Idempotency-Key" in request.headers:
                return idempotently(request.headers["Idempotency-Key"], lambda: validated(*args, **kwargs))
            return validated(*args, **kwargs)

        wrapper.permission = permission
        wrapper.api_scope = scope
        return wrapper

    return decorate


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, no space: a UUID, a ULID, "order-42"


def idempotently(raw_key: str, handle: Callable[[], Any]):
    """Run a write once per (user, Idempotency-Key). The key is claimed (committed) before the write
    runs, so a second request with it, even at the same moment, never writes again: it gets the first
    reply replayed (Idempotent-Replayed: true), or 409 while the first still runs, or 422 when the key
    comes with another request. A refused first request (4xx, 5xx) frees the key for a corrected one."""
    from flask import make_response
    from sqlalchemy.exc import IntegrityError

    from webapp.models import IdempotentReply

    if not IDEMPOTENCY_KEY.fullmatch(raw_key):
        raise ApiError(
            400, "idempotency_key", "Idempotency-Key must be 1 to 64 printable ASCII characters without spaces."
        )
    user = g.api_user
    fingerprint = hashlib.sha256(f"{request.method} {request.path}\n".encode() + request.get_data()).hexdigest()
    claim = IdempotentReply(user_id=user.id, key=raw_key, request_hash=fingerprint)
    db.session.add(claim)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        first = db.session.execute(
            sa.select(IdempotentReply).where(IdempotentReply.user_id == user.id, IdempotentReply.key == raw_key)
        ).scalar_one()
        if first.request_hash != fingerprint:
            raise ApiError(
                422, "idempotency_key_reused", "This Idempotency-Key was used for a different request."
            ) from None
        if first.status_code is None:
            raise ApiError(
                409,
                "in_progress",
                "A request with this Idempotency-Key is still running (or was interrupted): "
                "look the result up before sending again.",
            ) from None
        replay = current_app.response_class(first.body or "", status=first.status_code, mimetype="application/json")
        replay.headers["Idempotent-Replayed"] = "true"
        return replay
    claim_id = claim.id
    try:
        response = make_response(handle())
    except BaseException:
        db.session.rollback()
        db.session.execute(sa.delete(IdempotentReply).where(IdempotentReply.id == claim_id))
        db.session.commit()
        raise
    if response.status_code >= 400:
        db.session.execute(sa.delete(IdempotentReply).where(IdempotentReply.id == claim_id))
    else:
        db.session.execute(
            sa.update(IdempotentReply)
            .where(IdempotentReply.id == claim_id)
            .values(status_code=response.status_code, body=response.get_data(as_text=True))
        )
    db.session.commit()
    return response


REPLAY_FOR = timedelta(days=1)  # how long a keyed write's reply is kept to replay


def prune_replies(now: datetime) -> int:
    """Forget the replies of keyed writes older than REPLAY_FOR (the cron's job, hourly): how many."""
    from webapp.models import IdempotentReply

    gone = db.session.execute(sa.delete(IdempotentReply).where(IdempotentReply.created_at < now - REPLAY_FOR))
    db.session.commit()
    return gone.rowcount or 0


def _require_json_object() -> None:
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", JSON_PLEASE)
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "malformed_json", "The body is not valid JSON.")
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "The body must be a JSON object.")
    if inputs.has_control_characters(_strings(body)):  # NUL and C0 controls, refused as on the pages
        raise ApiError(400, "control_characters", "Text in the body may not hold control characters.")


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield name
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# --- schemas shared by the operations --------------------------------------------------------------


class Strict(BaseModel):
    """Request bodies and queries: an unknown field is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def _parsed_decimal(precision: int, scale: int, minimum: Decimal | None):
    def parse(raw: object) -> Decimal:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float, Decimal)):
            raise ValueError("Enter a number (a JSON number or a decimal string).")
        text = raw if isinstance(raw, str) else (repr(raw) if isinstance(raw, float) else str(raw))
        try:
            return inputs.decimal_number(text, precision=precision, scale=scale, minimum=minimum)
        except inputs.InputError as exc:
            raise ValueError(str(exc)) from None

    return parse


def DecimalIn(precision: int = 14, scale: int = 4, minimum: Decimal | None = None):
    """A money or price input through the input layer (webapp.inputs): a decimal string or a JSON number,
    plain ASCII digits, fitting NUMERIC(precision, scale). Never a float inside the desk."""
    return Annotated[
        Decimal,
        BeforeValidator(_parsed_decimal(precision, scale, minimum)),
        WithJsonSchema(
            {"anyOf": [{"type": "string", "pattern": r"^-?[0-9]{1,18}(\.[0-9]{1,4})?$"}, {"type": "number"}]}
        ),
    ]


# money and prices out: a decimal string (exact to the paisa; a JSON number would be a float to most readers)
Money = Annotated[
    Decimal,
    PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string"}),
]
Id = Annotated[int, Field(ge=1, le=inputs.MAX_ID)]
Quantity = Annotated[int, Field(ge=0, le=inputs.MAX_INT, strict=True)]

T = TypeVar("T")
MAX_PER_PAGE = 200


class PageQuery(Strict):
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(50, ge=1, le=MAX_PER_PAGE)


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int
    pages: int
    next_page: int | None


def paged(select: sa.Select, query: PageQuery, item: type[T], convert: Callable[[Any], Any] | None = None) -> Page[T]:
    """One page of a SELECT of ORM rows as a Page of `item` (by default read from the row's attributes)."""
    total = db.session.execute(sa.select(sa.func.count()).select_from(select.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(select.limit(query.per_page).offset((query.page - 1) * query.per_page)).scalars()
    convert = convert or (lambda row: item.model_validate(row, from_attributes=True))
    pages = max(1, math.ceil(total / query.per_page))
    return Page[item](
        items=[convert(row) for row in rows],
        page=query.page,
        per_page=query.per_page,
        total=total,
        pages=pages,
        next_page=query.page + 1 if query.page < pages else None,
    )
