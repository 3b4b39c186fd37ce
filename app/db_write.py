"""Write one ORM object with a single Core statement, for request paths that run on every click.

A unit-of-work flush of one object costs about four times a plain INSERT or UPDATE on SQLite
(measured with SQLAlchemy 2.1: 340 µs against 85 µs), because it sorts dependencies, snapshots
attribute history and fires events. On the annotation queue the flushes were a third of the
server's CPU time. write_object runs one INSERT or UPDATE with RETURNING and leaves the object as
if it had just been loaded: persistent and clean, holding what the database stored (defaults and
onupdate values included), so later reads, flushes and commits treat it as usual.

Only column attributes are written: set foreign keys by id, not through relationships. The
statement does not flush the session first, so write any object it depends on before it.
"""

from functools import lru_cache

from sqlalchemy import Insert, Table, Update, bindparam, insert, inspect, update
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from app.db import Base

# The bind parameter of the primary key in the WHERE of an UPDATE; SQLAlchemy reserves the
# column's own name for the SET clause.
_KEY = "_row_key"


@lru_cache
def _insert(table: Table) -> Insert:
    return insert(table).returning(*table.c)


@lru_cache
def _update(table: Table) -> Update:
    (key,) = table.primary_key.columns
    return update(table).where(key == bindparam(_KEY)).returning(*table.c)


def _stored_values(mapper: Mapper, row) -> dict:
    values = row._mapping
    return {prop.key: values[prop.columns[0]] for prop in mapper.column_attrs}


def write_object(db: Session, obj: Base) -> None:
    """INSERT a new object, or UPDATE a loaded one's changed columns, in one statement.

    A new object is attached to the session afterwards; an object the session already holds as
    pending is taken out of the unit of work first, so the next flush does not insert it again.
    An unchanged loaded object costs no statement.
    """
    state = inspect(obj)
    mapper = state.mapper
    table = mapper.local_table
    if state.key is None:
        values = {
            prop.columns[0].key: state.dict[prop.key]
            for prop in mapper.column_attrs
            if prop.key in state.dict and not (prop.columns[0].primary_key and state.dict[prop.key] is None)
        }
        row = db.connection().execute(_insert(table), values).one()
        if state.pending:
            db.expunge(obj)
        # make_transient_to_detached resets the attribute history, so plain assignment is enough.
        state.dict.update(_stored_values(mapper, row))
        make_transient_to_detached(obj)
        db.add(obj)
        return

    changed = {
        prop.columns[0].key: state.dict[prop.key]
        for prop in mapper.column_attrs
        if prop.key in state.committed_state and prop.key in state.dict
    }
    if not changed:
        return
    (identity,) = state.identity
    row = db.connection().execute(_update(table), {**changed, _KEY: identity}).one()
    for key, value in _stored_values(mapper, row).items():
        if key in state.committed_state or state.dict.get(key) != value:
            set_committed_value(obj, key, value)
