"""Locust entry point for jpki-mock's load profiles.

    JPKI_LOADTEST_PLAN=out/plan.json locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8080

``jpki-mock loadtest run`` writes the plan and starts Locust for you (docs/loadtest.md); run
Locust yourself for a set-up it does not cover, such as workers on several machines.  Only
the user classes the plan enables are defined, with the user counts it needs.
"""

from jpki_mock.loadtest.shapes import JpkiShape  # noqa: F401  (Locust finds the shape class here)
from jpki_mock.loadtest.users import USER_CLASSES, context

_ctx = context()
for _name, _cls in USER_CLASSES.items():
    if _name in _ctx.spec.classes:
        if _name != "auth":
            _cls.fixed_count = _ctx.plan.fixed[_name]
        globals()[_cls.__name__] = _cls
del _name, _cls
