"""The request's tenant: its key and a facade locked to the key's namespace.

Routes reach data only through :class:`Tenant`, whose memory view refuses any other namespace,
so no route can forget the scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from ..memory import Memory
from ..sessions import Session
from ..types import ApiKey, Quota
from .auth import KeyRing, Principal
from .errors import ApiError
from .quotas import Limiter

if TYPE_CHECKING:
    from .managers import Managers


@dataclass(frozen=True)
class Services:
    """What the app holds: the shared facade over the store, keys and limits, and the
    server-run memory managers (``None`` unless ``extract_sessions`` is on)."""

    memory: Memory
    keys: KeyRing
    limiter: Limiter
    managers: Managers | None = None


@dataclass(frozen=True)
class Tenant:
    key: ApiKey
    memory: Memory
    limiter: Limiter
    ancestors: tuple[ApiKey, ...] = ()
    """The keys this key was created from (their per-key limits bound it too)."""
    managers: Managers | None = None
    """The server-run memory managers (``extract_sessions``), if on."""

    @property
    def namespace(self) -> str:
        return self.key.namespace

    @property
    def quota(self) -> Quota:
        """The stored-data limits the facade's writes are checked against."""
        return self.limiter.quota(self.key)

    def session(self, session_id: str) -> Session:
        return Session(session_id, self.memory.store, namespace=self.namespace)

    def items_stored(self, session_id: str, items: list[dict[str, object]]) -> None:
        """Tell the server-run manager (if any) that ``items`` were stored in the session."""
        if self.managers is not None:
            self.managers.notify(self.namespace, self.quota, session_id, items)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def principal(request: Request) -> Principal:
    """The authenticated caller (the idempotency layer may have authenticated already)."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None:
        found = services(request).keys.authenticate(request.headers)
        request.state.principal = found
    return found


def tenant(request: Request) -> Tenant:
    return tenant_for(services(request), principal(request))


def tenant_for(svc: Services, who: Principal) -> Tenant:
    """The tenant of an authenticated caller (the API's and the web page's), after its
    request-rate limit; admins get 403: they have no namespace data."""
    if who.key is None:
        # admin keys manage keys and namespaces only: no data route, no statistics
        raise ApiError(
            403, "forbidden", "admin keys manage keys only; use a namespace key for data"
        )
    svc.limiter.check_rate(who.key, who.ancestors)
    return Tenant(
        who.key, svc.memory.scoped(who.key.namespace), svc.limiter, who.ancestors, svc.managers
    )


TenantDep = Annotated[Tenant, Depends(tenant)]
PrincipalDep = Annotated[Principal, Depends(principal)]
ServicesDep = Annotated[Services, Depends(services)]
