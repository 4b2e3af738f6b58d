"""An id is never given to a second row: on SQLite every auto id is AUTOINCREMENT (new
databases at once, older ones by upgrade step 10); PostgreSQL's SERIAL never went back."""

from __future__ import annotations

import pytest
from peewee import IntegrityError, SqliteDatabase, sort_models

from domain.accounts import Account, Device
from domain.db import NeverReusedId, open_database
from domain.gates import Gate, GateEvent, GateStatus
from domain.passes import VehiclePass
from domain.schema import MIGRATIONS, SchemaVersion, Steps, app_models, upgrade
from domain.territories import JoinRequest, Membership, Territory, Unit
from tests import database as test_database

STEP = 10
PLAIN_KEY = '"id" INTEGER NOT NULL PRIMARY KEY'


def _auto_id(model) -> bool:
    return isinstance(model._meta.primary_key, NeverReusedId)


def _step(number: int):
    return next(step for version, _name, step in MIGRATIONS if version == number)


def _old_sqlite(tmp_path) -> SqliteDatabase:
    """A SQLite file as a release before step 10 made it: every table, no AUTOINCREMENT,
    stamped with every earlier step."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    database = open_database(url, pooled=False)
    models = app_models()
    with database.bind_ctx(models):
        for model in sort_models(models):
            sql, params = model._schema._create_table(safe=False).query()
            assert PLAIN_KEY + " AUTOINCREMENT" in sql or not _auto_id(model)
            database.execute_sql(sql.replace(" AUTOINCREMENT", ""), params)
            model._schema.create_indexes(safe=True)
        assert upgrade(database, models, [m for m in MIGRATIONS if m[0] != STEP]) != []
    return database


def _schema(database) -> dict[str, tuple[str, str, str]]:
    return {name: (kind, table, sql) for kind, name, table, sql in database.execute_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name <> 'sqlite_sequence'")}


def _contents(database) -> dict[str, list[tuple]]:
    """Every table's rows but the upgrade's own records."""
    tables = [name for (name,) in database.execute_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT IN ('sqlite_sequence', 'schema_version')")]
    return {t: database.execute_sql(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall()
            for t in tables}


def _foreign_keys(database) -> dict[str, list[tuple]]:
    return {t: database.execute_sql(f'PRAGMA foreign_key_list("{t}")').fetchall()
            for t in _contents(database)}


def _fill(manager_phone: str = "+79990000001") -> dict[str, int]:
    """A little of everything that refers to something else; returns some ids."""
    manager = Account.create(phone=manager_phone, surname="Управляева")
    resident = Account.create(phone="+79990000002", surname="Жильцов")
    stranger = Account.create(phone="+79990000003", surname="Чужов")
    territory = Territory.create(name="ЖК «Парк»", code="123456")
    unit = Unit.create(territory=territory, name="Дом 1")
    Membership.create(account=manager, territory=territory, role="manager")
    member = Membership.create(account=resident, territory=territory, unit=unit)
    for label in ("Дом 2", "Дом 3", "Дом 4"):
        JoinRequest.create(account=stranger, territory=territory, unit_label=label)
    gate = Gate.create(territory=territory, name="Въезд", host="10.0.0.5", port=502)
    GateStatus.create(gate=gate, status="ok")
    GateEvent.create(territory=territory, gate=gate, code=1, credential="A123BC77",
                     account=resident)
    VehiclePass.create(territory=territory, account=resident, unit=unit, plate="A123BC77",
                       valid_from=member.created_at, created_by=manager)
    Device.create(account=resident, token_hash="t", label="телефон",
                  expires_at=member.created_at)
    return {"territory": territory.id, "member": member.id, "stranger": stranger.id}


def test_every_auto_id_is_autoincrement_on_sqlite_and_serial_on_postgresql(scratch):
    database = scratch()
    models = app_models()
    with database.bind_ctx(models + [SchemaVersion]):
        database.create_tables(models + [SchemaVersion])
        if isinstance(database, SqliteDatabase):
            sql = dict(database.execute_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
            for model in models + [SchemaVersion]:
                table = sql[model._meta.table_name]
                assert ((PLAIN_KEY + " AUTOINCREMENT") in table) == _auto_id(model), table
        else:
            defaults = dict(database.execute_sql(
                "SELECT table_name || '.' || column_name, column_default"
                " FROM information_schema.columns WHERE table_schema = current_schema()"
            ).fetchall())
            for model in models + [SchemaVersion]:
                key = model._meta.primary_key
                default = defaults[f"{model._meta.table_name}.{key.column_name}"] or ""
                assert default.startswith("nextval(") == _auto_id(model), model
    # Models with a key of their own keep it.
    assert not _auto_id(SchemaVersion) and not _auto_id(GateStatus)
    assert {m.__name__ for m in models if not _auto_id(m)} == {
        "GateStatus", "SandboxBankPayment", "TerritoryVersion"}


def test_a_deleted_newest_request_or_membership_leaves_its_id_unused(app):
    with app.app_context():
        ids = _fill()
        newest = JoinRequest.select().order_by(JoinRequest.id.desc()).first()
        newest.delete_instance()
        again = JoinRequest.create(account=ids["stranger"], territory=ids["territory"],
                                   unit_label="Дом 5")
        assert again.id > newest.id
        member = Membership.get_by_id(ids["member"])
        assert member.id == Membership.select().order_by(Membership.id.desc()).first().id
        member.delete_instance()
        newcomer = Membership.create(account=ids["stranger"], territory=ids["territory"])
        assert newcomer.id > member.id


def test_inside_the_upgrade_foreign_keys_cannot_be_turned_off(tmp_path):
    """Why step 10 does not begin, as SQLite's rebuild recipe does, with foreign keys off:
    the upgrade is one transaction, and inside one that pragma does nothing."""
    database = _old_sqlite(tmp_path)
    seen = []

    def probe(s: Steps) -> None:
        s.database.execute_sql("PRAGMA foreign_keys = OFF")
        seen.append(s.database.execute_sql("PRAGMA foreign_keys").fetchone()[0])

    with database.bind_ctx(app_models()):
        assert upgrade(database, app_models(), [(99, "probe", probe)]) == [99]
    assert seen == [1]


def test_an_old_sqlite_database_upgrades_keeping_rows_ids_indexes_and_foreign_keys(tmp_path):
    database = _old_sqlite(tmp_path)
    models = app_models()
    with database.bind_ctx(models):
        ids = _fill()
        schema, contents, keys = _schema(database), _contents(database), _foreign_keys(database)
        newest_request = max(r.id for r in JoinRequest.select())
    database.close()

    database = open_database(f"sqlite:///{tmp_path / 'old.db'}", pooled=False)
    with database.bind_ctx(models):
        assert upgrade(database) == [STEP]
        # Every row and id, every foreign key, index and trigger as it was (gate_status,
        # rebuilt because it refers to gate, too); only the auto ids gained AUTOINCREMENT.
        assert _contents(database) == contents
        assert _foreign_keys(database) == keys
        auto = {m._meta.table_name for m in models if _auto_id(m)}
        expected = {
            name: (kind, table, sql.replace(PLAIN_KEY, PLAIN_KEY + " AUTOINCREMENT", 1)
                   if name in auto else sql)
            for name, (kind, table, sql) in schema.items()}
        assert _schema(database) == expected
        assert database.execute_sql("PRAGMA foreign_key_check").fetchall() == []
        assert database.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
        # The rebuild ran inside the upgrade's transaction with foreign keys on throughout,
        # and left nothing deferred behind.
        assert database.execute_sql("PRAGMA foreign_keys").fetchone() == (1,)
        assert database.execute_sql("PRAGMA defer_foreign_keys").fetchone() == (0,)

        # From now on an id is never given twice.
        JoinRequest.delete_by_id(newest_request)
        again = JoinRequest.create(account=ids["stranger"], territory=ids["territory"],
                                   unit_label="Дом 5")
        assert again.id == newest_request + 1
        Membership.delete_by_id(ids["member"])
        assert Membership.create(account=ids["stranger"],
                                 territory=ids["territory"]).id == ids["member"] + 1

        # The foreign keys point at the rebuilt tables: still checked, still cascading.
        with pytest.raises(IntegrityError), database.atomic():
            Membership.create(account=ids["stranger"], territory=ids["territory"] + 100)
        Territory.delete_by_id(ids["territory"])
        assert Membership.select().count() == 0 and GateStatus.select().count() == 0
        assert GateEvent.select().count() == 0

        # Stamped; and the step itself, run again, finds nothing to do.
        assert upgrade(database) == []
        before = _schema(database)
        with database.atomic():
            _step(STEP)(Steps(database))
        assert _schema(database) == before


def test_ids_given_before_the_upgrade_stay_given(tmp_path):
    """A table that had AUTOINCREMENT already and is rebuilt (it refers to a rebuilt one)
    keeps its sqlite_sequence: the ids of its deleted newest rows stay used."""
    database = _old_sqlite(tmp_path)
    models = app_models()
    with database.bind_ctx(models):
        ids = _fill()
        # As if join_request alone had been made with AUTOINCREMENT.
        sql = database.execute_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'join_request'").fetchone()[0]
        with database.atomic():
            database.execute_sql(sql.replace('"join_request"', '"jr"').replace(
                PLAIN_KEY, PLAIN_KEY + " AUTOINCREMENT", 1))
            database.execute_sql("INSERT INTO jr SELECT * FROM join_request")
            database.execute_sql("DROP TABLE join_request")
            database.execute_sql('ALTER TABLE jr RENAME TO "join_request"')
        newest = max(r.id for r in JoinRequest.select())
        JoinRequest.delete_by_id(newest)

        assert upgrade(database) == [STEP]
        again = JoinRequest.create(account=ids["stranger"], territory=ids["territory"],
                                   unit_label="Дом 5")
        assert again.id == newest + 1


def test_a_row_whose_parent_is_gone_stops_the_upgrade_and_changes_nothing(tmp_path):
    database = _old_sqlite(tmp_path)
    models = app_models()
    with database.bind_ctx(models):
        ids = _fill()
        # Written with foreign keys off (the sqlite3 shell's default): an orphan.
        database.execute_sql("PRAGMA foreign_keys = OFF")
        Membership.create(account=ids["stranger"], territory=ids["territory"] + 100)
        database.execute_sql("PRAGMA foreign_keys = ON")
        schema, contents = _schema(database), _contents(database)

        with pytest.raises(RuntimeError, match="parent is missing.*'membership'"):
            upgrade(database)
        assert _schema(database) == schema
        assert _contents(database) == contents
        with database.bind_ctx([SchemaVersion]):
            assert STEP not in {v.version for v in SchemaVersion.select()}


def test_on_postgresql_the_step_leaves_the_schema_alone():
    url = test_database.cluster().create_database()
    database = open_database(url, pooled=False)
    models = app_models()
    try:
        with database.bind_ctx(models):
            database.create_tables(models)
            _fill()
            columns = "SELECT * FROM information_schema.columns WHERE table_schema = 'public'"
            before = sorted(database.execute_sql(columns).fetchall(), key=str)
            with database.atomic():
                _step(STEP)(Steps(database))
            assert sorted(database.execute_sql(columns).fetchall(), key=str) == before
            assert JoinRequest.select().count() == 3
    finally:
        database.close()
