"""Runs the shop app's migrations and a round of ORM work against the
database given by the environment (PGHOST, PGPORT, PGDATABASE, PGUSER),
then prints every table's rows as JSON, in a stable order, for the test
to compare between one Postgres and shardgate."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "shop"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["PGHOST"],
            "PORT": os.environ["PGPORT"],
            "NAME": os.environ["PGDATABASE"],
            "USER": os.environ["PGUSER"],
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
        }
    },
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
)
django.setup()

from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import transaction
from django.db.models import Count, ProtectedError, Q

from shop.models import Plan, Tenant

call_command("migrate", verbosity=0)

# Create.
Plan.objects.bulk_create([
    Plan(code="free", title="Free", monthly="0.00"),
    Plan(code="pro", title="Pro", monthly="20.00"),
    Plan(code="team", title="Team", monthly="99.50"),
])
for i in range(1, 13):
    Tenant.objects.create(name=f"tenant {i}", plan_id=["free", "pro", "team"][i % 3])
made = Tenant.objects.bulk_create([Tenant(name=f"bulk {i}", plan_id="pro") for i in range(5)])
bulk_ids = [t.id for t in made]
with transaction.atomic():
    t = Tenant.objects.create(name="in a transaction", plan_id="team")
    try:
        with transaction.atomic():
            Tenant.objects.create(name="rolled back", plan_id="free")
            raise RuntimeError("roll the savepoint back")
    except RuntimeError:
        pass

alice = User.objects.create_user("alice", password="secret")
staff = Group.objects.create(name="staff")
staff.permissions.add(*Permission.objects.filter(content_type__app_label="shop"))
alice.groups.add(staff)

# Read.
reads = {
    "bulk_ids": bulk_ids,
    "pro_count": Tenant.objects.filter(plan__code="pro").count(),
    "third": Tenant.objects.get(pk=3).name,
    "first_five": list(Tenant.objects.order_by("-id").values_list("name", flat=True)[:5]),
    "by_plan": list(Tenant.objects.values("plan_id").annotate(n=Count("id")).order_by("plan_id")),
    "alice_perms": sorted(alice.get_all_permissions()),
    "pro_or_team": Tenant.objects.filter(Q(plan_id="pro") | Q(plan_id="team"), active=True).count(),
}

# Update.
t = Tenant.objects.get(pk=2)
t.name = "renamed"
t.save()
Tenant.objects.filter(plan_id="free").update(active=False)
Plan.objects.filter(code="team").update(monthly="89.50")

# Delete.
Tenant.objects.filter(pk__in=[4, 5]).delete()
try:
    Plan.objects.get(pk="free").delete()
    reads["protected"] = False
except ProtectedError:
    reads["protected"] = True
alice.groups.clear()


def rows(qs, *fields):
    return [[str(v) for v in r] for r in qs.order_by(*fields[:1]).values_list(*fields)]


print(json.dumps({
    "reads": reads,
    "plans": rows(Plan.objects, "code", "title", "monthly"),
    "tenants": rows(Tenant.objects, "id", "name", "plan_id", "active"),
    "users": rows(User.objects, "id", "username", "is_active"),
    "groups": rows(Group.objects, "id", "name"),
    "content_types": rows(ContentType.objects, "id", "app_label", "model"),
    "permissions": rows(Permission.objects, "id", "codename", "content_type_id"),
    "group_permissions": rows(staff.permissions.through.objects, "id", "group_id", "permission_id"),
}, indent=1, sort_keys=True))
