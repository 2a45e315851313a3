"""The per-request context: who is calling, the shared dependencies, and fresh DataLoaders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from bff.loaders import Loaders
from resolvers.deps import Deps
from resolvers.identity import ANONYMOUS, Viewer


@dataclass
class Context:
    deps: Deps
    loaders: Loaders
    request: Any = None
    response: Any = None
    viewer: Viewer = ANONYMOUS
    # Set when a token was sent but could not be used; permission errors then say why.
    auth_error: str | None = None
    connection_params: dict[str, Any] | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _owners: dict[str, int] | None = None

    def begin_operation(self) -> None:
        """A WebSocket connection shares one context across operations: each gets fresh loaders,
        so nothing cached by one subscription or query is served stale to the next."""
        self.loaders = Loaders(self.deps)
        self._owners = None

    async def his_patient_owners(self) -> dict[str, int]:
        """HIS patient id → the viewer's patient id; through the request's loaders, so once."""
        if self._owners is None:
            owners: dict[str, int] = {}
            if self.viewer.account_id is not None:
                mine = await self.loaders.patients_by_account.load(self.viewer.account_id)
                cards = await self.loaders.cards_by_patient.load_many([p.id for p in mine])
                owners = {card.his_patient_id: card.patient_id for group in cards for card in group}
                owners.update({p.his_patient_id: p.id for p in mine if p.his_patient_id})
            self._owners = owners
        return self._owners
