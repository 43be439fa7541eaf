"""Users' API tokens (admin only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin
from vigil.service.api.errors import not_found
from vigil.service.api.responses import ViewRoute
from vigil.service.store.sessions import end_token_sessions
from vigil.service.store.tokens import USER_ROLES, Principal, issue_token, list_tokens, revoke_token
from vigil.wire.views import IssuedUserToken, Items, TokenInfo

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], route_class=ViewRoute)


class TokenRequest(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.@:-]*$")
    role: Literal["admin", "viewer"]


@router.post(
    "",
    status_code=201,
    response_model=IssuedUserToken,
    summary="Create a user token (shown once)",
    openapi_extra=openapi_body(TokenRequest),
)
async def create_token(request: Request, who: Principal = Depends(admin)) -> dict:
    body: TokenRequest = await parse_body(request, TokenRequest)

    def work():
        with request.app.state.engine.begin() as conn:
            return issue_token(conn, role=body.role, name=body.name)

    tok = await run_in_threadpool(work)
    return {"id": tok.id, "name": tok.name, "role": tok.role, "token": tok.secret}


@router.get("", response_model=Items[TokenInfo], summary="List user tokens (never their secrets)")
def get_tokens(request: Request, who: Principal = Depends(admin)) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": list_tokens(conn, USER_ROLES + ("registration",))}


@router.delete("/{token_id}", status_code=204, summary="Revoke a token")
def delete_token(token_id: str, request: Request, who: Principal = Depends(admin)) -> None:
    with request.app.state.engine.begin() as conn:
        if not revoke_token(conn, token_id):
            raise not_found(f"token {token_id!r} does not exist or is already revoked")
        end_token_sessions(conn, token_id)
