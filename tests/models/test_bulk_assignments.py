"""models.assignments bulk changes: one statement per chunk of pairs, outcomes per pair.

Named apart from tests/webapi/test_assignments.py: the test folders are not packages, so two
test modules may not share a basename.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from models import Database, Role, Warehouse, WarehouseAssignment
from models.accounts import create_user
from models.assignments import CHUNK_SIZE, PairChange, apply_changes


@pytest.fixture
def statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(database.primary, "before_cursor_execute", record)
    yield seen
    event.remove(database.primary, "before_cursor_execute", record)


def make_people_and_places(database: Database, users: int, warehouses: int):
    with database.transaction() as session:
        people = [
            create_user(session, f"p{i}@example.com", "a long password", Role.CLERK)
            for i in range(users)
        ]
        places = [Warehouse(code=f"B{i}", name=f"B{i}") for i in range(warehouses)]
        session.add_all(places)
        session.flush()
        return [p.id for p in people], [w.id for w in places]


def test_bulk_changes_run_one_statement_per_chunk(
    database: Database, statements: list[str]
) -> None:
    users, warehouses = make_people_and_places(database, 50, 50)  # 2,500 pairs
    assigns = [PairChange(u, w, "assign") for u in users for w in warehouses]
    statements.clear()
    with database.transaction() as session:
        outcomes = apply_changes(session, assigns, None)
    inserts = [s for s in statements if s.startswith("INSERT INTO warehouse_assignments")]
    assert len(inserts) == -(-len(assigns) // CHUNK_SIZE) == 3
    assert {o.outcome for o in outcomes} == {"assigned"}

    removes = [PairChange(u, w, "remove") for u in users[:30] for w in warehouses]  # 1,500
    again = [PairChange(users[-1], warehouses[0], "assign")]
    statements.clear()
    with database.transaction() as session:
        outcomes = apply_changes(session, removes + again, None)
    deletes = [s for s in statements if s.startswith("DELETE FROM warehouse_assignments")]
    assert len(deletes) == 2
    assert [o.outcome for o in outcomes[-2:]] == ["removed", "already_assigned"]
    with database.session() as session:
        left = session.scalar(select(func.count()).select_from(WarehouseAssignment))
    assert left == 2_500 - 1_500


def test_a_failing_chunk_undoes_the_whole_request(database: Database) -> None:
    users, warehouses = make_people_and_places(database, 2, 1)
    changes = [
        PairChange(users[0], warehouses[0], "assign"),
        *(PairChange(u, 999_999, "assign") for u in users),
    ]
    with pytest.raises(IntegrityError, match="foreign key"), database.transaction() as session:
        apply_changes(session, changes, None)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(WarehouseAssignment)) == 0
