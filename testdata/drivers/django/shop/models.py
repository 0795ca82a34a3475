"""A small shop: plans, a reference table, and tenants, sharded by their
own id (keyspace shop, testdata/drivers/django/vschema.yaml)."""

from django.db import models


class Plan(models.Model):
    code = models.CharField(max_length=20, primary_key=True)
    title = models.CharField(max_length=100)
    monthly = models.DecimalField(max_digits=8, decimal_places=2)


class Tenant(models.Model):
    name = models.CharField(max_length=100)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT)
    active = models.BooleanField(default=True)
    joined = models.DateTimeField(auto_now_add=True)
