"""The migrations build exactly the schema the models describe (so every schema change is a migration)."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from tests.conftest import make_app
from webapp.extensions import db


def test_upgrade_matches_models_and_downgrades(services, encryption_key, tmp_path):
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    app = make_app(services, encryption_key, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            diff = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True, "render_as_batch": True}),
                db.metadata,
            )
        assert diff == [], f"models and migrations differ: {diff}"
        downgrade(revision="base")
        assert sa.inspect(db.engine).get_table_names() == ["alembic_version"]
        db.engine.dispose()
