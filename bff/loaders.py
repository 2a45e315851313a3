"""DataLoaders, created per request: each batches one kind of lookup into one round trip."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Generic, TypeVar

from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader
from strawberry.extensions import SchemaExtension

from datasources.cache import Cache
from datasources.clock import local_date
from datasources.his import contract as c
from resolvers import cache_keys, catalog, notifications, patients
from resolvers.deps import Deps

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


def _by_id(items: Sequence[T], keys: Sequence[str]) -> list[T | None]:
    index = {getattr(item, "id"): item for item in items}  # noqa: B009
    return [index.get(k) for k in keys]


class FreshLoadersPerOperation(SchemaExtension):
    """Per-request loaders come from ``get_context``; on a WebSocket that runs once per connection."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(getattr(context, "request", None), WebSocket):
            context.begin_operation()
        yield


class CacheFirst(Generic[K, V]):
    """A DataLoader that answers from the shared cache without suspending when every key is there:
    no future, no batch, no trip round the event loop; anything missing goes through the batch."""

    def __init__(self, cache: Cache, prefix: str, loader: DataLoader[K, V]) -> None:
        self._cache, self._prefix, self._loader = cache, prefix, loader

    async def load(self, key: K) -> V:
        found = self._cache.get(f"{self._prefix}:{key}")
        if found is not Cache.MISSING:
            return found  # type: ignore[no-any-return]
        return await self._loader.load(key)

    async def load_many(self, keys: Sequence[K]) -> list[V]:
        found = [self._cache.get(f"{self._prefix}:{k}") for k in keys]
        if all(v is not Cache.MISSING for v in found):
            return found
        return list(await self._loader.load_many(keys))


class Loaders:
    """Each batch goes through the shared cache first (see resolvers.cache_keys for what and how long)."""

    def __init__(self, deps: Deps) -> None:
        his, cache = deps.sources.his, deps.cache

        async def doctors(keys: list[str]) -> list[c.Doctor | None]:
            async def load(missing: list[str]) -> list[c.Doctor | None]:
                return _by_id(await his.doctors_by_ids(missing), missing)

            return await cache.many(cache_keys.DOCTOR, keys, cache_keys.CATALOG_TTL, load)

        async def departments(keys: list[str]) -> list[c.Department | None]:
            async def load(missing: list[str]) -> list[c.Department | None]:
                return _by_id(await his.departments_by_ids(missing), missing)

            return await cache.many(cache_keys.DEPARTMENT, keys, cache_keys.CATALOG_TTL, load)

        async def campuses(keys: list[str]) -> list[c.Campus | None]:
            async def load(missing: list[str]) -> list[c.Campus | None]:
                return _by_id(await his.campuses(), missing)  # HIS lists them all in one answer

            return await cache.many(cache_keys.CAMPUS, keys, cache_keys.CATALOG_TTL, load)

        async def schedules(keys: list[str]) -> list[c.Schedule | None]:
            return _by_id(await his.schedules_by_ids(list(keys)), keys)

        async def schedules_of_doctors(keys: list[tuple[str, date, date]]) -> list[list[c.Schedule]]:
            """Keys are (doctor, from, to); one HIS call per distinct date range, usually one."""
            today = local_date(deps.clock.now())
            ranges: dict[tuple[date, date], list[str]] = {}
            for doctor_id, start, end in keys:
                ranges.setdefault((start, end), []).append(doctor_id)
            found: dict[tuple[str, date, date], list[c.Schedule]] = {}
            for (start, end), doctor_ids in ranges.items():
                for s in await catalog.schedules(
                    his,
                    date_from=start,
                    date_to=end,
                    today=today,
                    department_id=None,
                    doctor_ids=doctor_ids,
                    campus_id=None,
                ):
                    found.setdefault((s.doctor_id, start, end), []).append(s)
            return [found.get(k, []) for k in keys]

        async def queue_snapshots(keys: list[str]) -> list[c.QueueSnapshot | None]:
            async def load(missing: list[str]) -> list[c.QueueSnapshot | None]:
                found = {s.schedule_id: s for s in await his.queue_snapshots(missing)}
                return [found.get(k) for k in missing]

            return await cache.many(cache_keys.QUEUE, keys, cache_keys.QUEUE_TTL, load)

        async def patients_of(keys: list[int]) -> list[list[patients.PatientView]]:
            return await patients.of_accounts(deps, keys)

        async def cards_of(keys: list[int]) -> list[list[patients.CardView]]:
            return await patients.cards_of(deps, keys)

        async def unread(keys: list[int]) -> list[int]:
            async def load(missing: list[int]) -> list[int]:
                return await notifications.unread_counts(deps.db, missing)

            return await cache.many(cache_keys.UNREAD, keys, cache_keys.UNREAD_TTL, load)

        self.doctor_by_id = CacheFirst(cache, cache_keys.DOCTOR, DataLoader(doctors))
        self.department_by_id = CacheFirst(cache, cache_keys.DEPARTMENT, DataLoader(departments))
        self.campus_by_id = CacheFirst(cache, cache_keys.CAMPUS, DataLoader(campuses))
        self.schedule_by_id = DataLoader(schedules)
        self.schedules_by_doctor = DataLoader(schedules_of_doctors)
        self.queue_snapshot_by_schedule = CacheFirst(cache, cache_keys.QUEUE, DataLoader(queue_snapshots))
        self.patients_by_account = CacheFirst(cache, cache_keys.PATIENTS, DataLoader(patients_of))
        self.cards_by_patient = CacheFirst(cache, cache_keys.CARDS, DataLoader(cards_of))
        self.unread_count_by_account = CacheFirst(cache, cache_keys.UNREAD, DataLoader(unread))
