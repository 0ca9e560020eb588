"""Only webapp/access.py knows that an admin sees every client: no other module or template
compares a role with "admin" to decide which clients to show (pages, partials, exports and the
feed's sockets ask access.client_scope, granted_scope, may_see or sees_every_client)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLE_TEST = re.compile(r"""\brole\s*(==|!=)\s*['"]admin['"]|\bis_admin\b""")


def test_no_module_or_template_but_access_decides_that_admins_see_everything():
    files = [*ROOT.glob("webapp/**/*.py"), *ROOT.glob("jobs/**/*.py"), *ROOT.glob("templates/**/*.html")]
    assert len(files) > 50
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in files
        if path != ROOT / "webapp" / "access.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if ROLE_TEST.search(line)
    ]
    assert offenders == []


def test_the_rule_itself():
    from webapp.access import granted_scope, may_see, sees_every_client

    assert sees_every_client("admin") and not any(sees_every_client(r) for r in ("trader", "limited", "viewer", None))
    assert granted_scope("admin", frozenset({1})) is None and granted_scope("trader", frozenset({1})) == {1}
    assert may_see("admin", frozenset(), 7) and may_see("viewer", frozenset({7}), 7)
    assert not may_see("viewer", frozenset({1}), 7)
    assert not may_see("admin", frozenset(), None)
