"""Schema creation and upgrades keep the data of a live database."""

from __future__ import annotations

import datetime as dt

import pytest
from peewee import CharField, IntegerField, Model

from domain.db import UtcDateTimeField, db, utcnow
from domain.schema import MIGRATIONS, SchemaVersion, Steps, app_models, upgrade


def _gadget_v1(database):
    class Gadget(Model):
        name = CharField()

        class Meta:
            table_name = "gadget"

    Gadget._meta.set_database(database)
    return Gadget


def _gadget_v2(database):
    class Gadget(Model):
        name = CharField()
        colour = CharField(default="red")
        weight = IntegerField(null=True)

        class Meta:
            table_name = "gadget"

    class Widget(Model):
        label = CharField()

        class Meta:
            table_name = "widget"

    Gadget._meta.set_database(database)
    Widget._meta.set_database(database)
    return Gadget, Widget


def test_upgrade_of_an_old_database_keeps_its_rows(scratch):
    database = scratch()
    old = _gadget_v1(database)
    database.create_tables([old])
    old.create(name="barrier")
    old.create(name="turnstile")
    database.close()

    database = scratch()
    gadget, widget = _gadget_v2(database)
    steps = [
        (1, "gadget colour", lambda s: s.add_columns(gadget, "colour")),
        (2, "gadget weight and index", lambda s: (
            s.add_columns(gadget, "weight"), s.add_index(gadget, "colour"))),
    ]
    assert upgrade(database, [gadget, widget], steps) == [1, 2]
    rows = [(g.name, g.colour, g.weight) for g in gadget.select().order_by(gadget.id)]
    assert rows == [("barrier", "red", None), ("turnstile", "red", None)]
    assert {c.name for c in database.get_columns("gadget")} == {"id", "name", "colour", "weight"}
    assert database.table_exists("widget")  # a table added since is created
    assert any(i.columns == ["colour"] for i in database.get_indexes("gadget"))
    # Running again changes nothing.
    assert upgrade(database, [gadget, widget], steps) == []
    with database.bind_ctx([SchemaVersion]):
        assert sorted(v.version for v in SchemaVersion.select()) == [1, 2]


def test_fresh_database_is_created_whole_and_stamped(scratch):
    database = scratch()
    gadget, widget = _gadget_v2(database)
    steps = [(1, "gadget colour", lambda s: s.add_columns(gadget, "colour"))]
    assert upgrade(database, [gadget, widget], steps) == []  # nothing to run: built current
    with database.bind_ctx([SchemaVersion]):
        assert [v.version for v in SchemaVersion.select()] == [1]


def test_steps_are_idempotent_when_columns_already_exist(scratch):
    database = scratch()
    gadget, widget = _gadget_v2(database)
    database.create_tables([gadget])
    steps = Steps(database)
    steps.add_columns(gadget, "colour", "weight")  # present already: no error
    steps.add_index(gadget, "colour")
    steps.add_index(gadget, "colour")
    steps.create_tables(widget)
    assert database.table_exists("widget")


def test_failed_step_leaves_nothing_half_done(scratch):
    database = scratch()
    old = _gadget_v1(database)
    database.create_tables([old])
    old.create(name="barrier")
    gadget, widget = _gadget_v2(database)

    def boom(steps):
        steps.add_columns(gadget, "colour")
        raise RuntimeError("step failed")

    with pytest.raises(RuntimeError):
        upgrade(database, [gadget, widget], [(1, "boom", boom)])
    # The whole upgrade was one transaction: no column, no stamp, no new table.
    assert "colour" not in {c.name for c in database.get_columns("gadget")}
    assert not database.table_exists("schemaversion")
    assert not database.table_exists("widget")
    assert [g.name for g in old.select()] == ["barrier"]


def test_app_schema_upgrades_idempotently(app):
    assert upgrade() == []
    for model in app_models():
        assert db.table_exists(model._meta.table_name)


def test_datetimes_are_stored_as_utc_and_come_back_aware(scratch):
    database = scratch()

    class Stamp(Model):
        at = UtcDateTimeField(default=utcnow)

        class Meta:
            database = None

    Stamp._meta.set_database(database)
    database.create_tables([Stamp])
    moscow = dt.timezone(dt.timedelta(hours=3))
    Stamp.create(at=dt.datetime(2026, 11, 23, 12, 0, tzinfo=moscow))
    back = Stamp.get().at
    assert back.tzinfo is not None
    assert back == dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        UtcDateTimeField().db_value(dt.datetime(2026, 1, 1))


def test_an_old_release_of_the_app_schema_upgrades_and_keeps_its_rows(scratch):
    """A database made before step 1 (no card and permanent-pass columns) is upgraded."""
    from domain.territories import Territory

    database = scratch()
    models = app_models()
    with database.bind_ctx(models):
        database.create_tables(models)
        Territory.create(code="123456", name="ЖК Старый", kind="residential")
        for column in ("max_permanent_passes", "card_price_kopecks", "card_validity_months"):
            database.execute_sql(f"ALTER TABLE territory DROP COLUMN {column}")
    database.close()

    database = scratch()
    with database.bind_ctx(models):
        every_step = [number for number, _name, _step in MIGRATIONS]
        assert upgrade(database) == every_step
        old = Territory.get(Territory.code == "123456")
        assert (old.name, old.max_permanent_passes, old.card_price_kopecks,
                old.card_validity_months) == ("ЖК Старый", 2, 15000, 48)
        assert upgrade(database) == []
        with database.bind_ctx([SchemaVersion]):
            assert sorted(v.version for v in SchemaVersion.select()) == every_step


def test_processes_starting_together_upgrade_in_turn(scratch):
    """The web processes and the bridge all run upgrade() at start, on a fresh database."""
    import threading

    database = scratch()
    models = app_models()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def start():
        try:
            barrier.wait()
            upgrade(database)
        except BaseException as error:  # collected and asserted on below
            errors.append(error)
        finally:
            database.close()

    with database.bind_ctx(models):
        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert all(database.table_exists(m._meta.table_name) for m in models)
        with database.bind_ctx([SchemaVersion]):
            assert sorted(v.version for v in SchemaVersion.select()) == [m[0] for m in MIGRATIONS]
